package dendrite_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/internal/dendrite"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// startDendrite starts a server for t and logs how long that took, which is
// the warm start time once the binaries are cached.
func startDendrite(t *testing.T, registrations ...string) *dendrite.Server {
	t.Helper()
	started := time.Now()
	srv := dendrite.StartForTest(t, dendrite.Options{AppServiceRegistrations: registrations})
	t.Logf("Dendrite %s at %s (server name %s, data %s) was ready after %s",
		dendrite.Version, srv.URL, srv.ServerName, srv.DataDir, time.Since(started).Round(time.Millisecond))
	return srv
}

func TestLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	srv := startDendrite(t)

	if err := srv.CreateUser(ctx, "admin", "admin-password", true); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Login(ctx, "admin", "wrong-password"); err == nil {
		t.Errorf("logging in with a wrong password succeeded")
	}
	cli, err := srv.Login(ctx, "admin", "admin-password")
	if err != nil {
		t.Fatal(err)
	}
	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "survives restarts"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Restart keeps data and URL", func(t *testing.T) {
		sendTxn := func() (id.EventID, error) {
			resp, err := cli.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: "once"}, mautrix.ReqSendEvent{TransactionID: "restart-txn"})
			if err != nil {
				return "", err
			}
			return resp.EventID, nil
		}
		first, err := sendTxn()
		if err != nil {
			t.Fatal(err)
		}
		before := srv.URL
		started := time.Now()
		if err := srv.Restart(ctx); err != nil {
			t.Fatalf("restarting: %v", err)
		}
		t.Logf("graceful restart took %s", time.Since(started).Round(time.Millisecond))
		if srv.URL != before {
			t.Errorf("URL changed from %s to %s", before, srv.URL)
		}
		// The old access token must still work: same databases.
		if _, err := cli.SendText(ctx, room.RoomID, "after restart"); err != nil {
			t.Errorf("sending with the old token after a restart: %v", err)
		}
		// Dendrite keeps transaction IDs in memory only.
		again, err := sendTxn()
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Logf("QUIRK: a transaction ID reused after a restart made a second event (%s, then %s)", first, again)
		}
	})

	t.Run("Kill and StartAgain simulate an outage", func(t *testing.T) {
		pid := srv.PID()
		srv.Kill()
		srv.Kill() // idempotent
		if srv.Running() {
			t.Fatal("still running after Kill")
		}
		assertGone(t, pid)
		if _, err := cli.Whoami(ctx); err == nil {
			t.Errorf("whoami succeeded while Dendrite was killed")
		}
		if err := srv.StartAgain(ctx); err != nil {
			t.Fatalf("starting again: %v", err)
		}
		if err := srv.StartAgain(ctx); err == nil {
			t.Errorf("starting a running server again succeeded")
		}
		if _, err := cli.SendText(ctx, room.RoomID, "after the outage"); err != nil {
			t.Errorf("sending after the outage: %v", err)
		}
	})

	t.Run("Pause makes requests hang until Resume", func(t *testing.T) {
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := cli.Whoami(short)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("whoami on a paused server: got %v, want a deadline error", err)
		}
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Whoami(ctx); err != nil {
			t.Errorf("whoami after Resume: %v", err)
		}
	})

	t.Run("Stop leaves no process and no port behind", func(t *testing.T) {
		if err := srv.Pause(); err != nil { // Stop must cope with a frozen server
			t.Fatal(err)
		}
		pid := srv.PID()
		u, _ := url.Parse(srv.URL)
		started := time.Now()
		srv.Stop()
		t.Logf("stopping a paused Dendrite took %s", time.Since(started).Round(time.Millisecond))
		srv.Stop() // idempotent
		assertGone(t, pid)
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			t.Errorf("port %s still taken after Stop: %v", u.Host, err)
		} else {
			l.Close()
		}
		if err := srv.StartAgain(ctx); err == nil {
			t.Errorf("StartAgain after Stop succeeded")
		}
		resp, err := http.Get(srv.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			t.Errorf("something still answers at %s after Stop", srv.URL)
		}
	})
}

// assertGone fails unless process pid and its process group no longer exist.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if pid == 0 {
		t.Fatal("no PID to check")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Dendrite process %d still exists (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Dendrite process group %d still exists (kill 0: %v)", pid, err)
	}
}
