package bridgev2_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest"
	"github.com/trestle-bridge/trestle/bridgev2/bridgetest/testnet"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/database/dbtest"
)

// Two processes of one bridge on one PostgreSQL database: one leads, the
// other stands by. (With SQLite one process is the whole bridge.)

const testTakeover = 2 * time.Second

// setupPair starts a leader and a standby of one bridge, and logs alice in.
func setupPair(t *testing.T, takeover time.Duration, fn func(t *testing.T, leader, standby *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin)) {
	for _, dialect := range dbtest.Dialects() {
		if dialect != database.Postgres {
			continue
		}
		t.Run(string(dialect), func(t *testing.T) {
			remote := testnet.NewRemote()
			leader := bridgetest.New(t, remote.Connector, bridgetest.Options{Dialect: dialect, Configure: func(c *bridgeconfig.Config) {
				c.Database.TakeoverTimeout = takeover
			}})
			waitLeading(t, leader)
			login := leader.Login(alice, map[string]string{"username": "alice1", "token": "secret"})
			standby := bridgetest.New(t, remote.Connector, bridgetest.Options{Peer: leader})
			if standby.Bridge().Leading() {
				t.Fatal("the second process leads too")
			}
			fn(t, leader, standby, remote, login)
		})
	}
}

func waitLeading(t *testing.T, h *bridgetest.Harness) {
	t.Helper()
	select {
	case <-h.Bridge().BecameLeader():
	case <-h.Ctx().Done():
		t.Fatal("the process never took the leader lease")
	}
}

func TestWhatAStandbyTakesInTheLeaderDelivers(t *testing.T) {
	setupPair(t, testTakeover, func(t *testing.T, leader, standby *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		// remote.Receive goes through the newest process: the standby.
		_, room := chatWithBob(t, leader, remote, login)
		// A homeserver transaction that reaches the standby is sent by the
		// leader.
		evt, err := leader.Matrix.AddUserEvent(room, alice, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "via the standby"})
		if err != nil {
			t.Fatal(err)
		}
		raw := fmt.Sprintf(`{"event_id":%q,"room_id":%q,"sender":%q,"type":"m.room.message","origin_server_ts":%d,"content":{"msgtype":"m.text","body":"via the standby"}}`,
			evt.ID, room, alice, evt.Timestamp)
		if status, body := standby.PutTransaction("standby-1", standby.Config.AppService.HSToken, []json.RawMessage{json.RawMessage(raw)}); status != http.StatusOK {
			t.Fatalf("the standby answered the transaction %d: %s", status, body)
		}
		if _, err := remote.WaitForCall(leader.Ctx(), func(c testnet.Call) bool { return c.Text == "via the standby" }); err != nil {
			t.Fatal(err)
		}
		if status, _ := get(t, standby.URL+"/_trestle/leader"); status != http.StatusServiceUnavailable {
			t.Errorf("the standby's /_trestle/leader answered %d", status)
		}
		if status, _ := get(t, leader.URL+"/_trestle/leader"); status != http.StatusOK {
			t.Errorf("the leader's /_trestle/leader answered %d", status)
		}
	})
}

func TestAStandbyTakesOverWhenTheLeaderStopsOrDies(t *testing.T) {
	setupPair(t, testTakeover, func(t *testing.T, leader, standby *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, leader, remote, login)
		// The leader dies: its lease is left to run out. Its process goes
		// on (as after a pause) but the lease is no longer its own.
		db := openPostgres(t, standby)
		died := time.Now()
		if _, err := db.ExecContext(standby.Ctx(), "UPDATE leader_lease SET holder = 'dead process'"); err != nil {
			t.Fatal(err)
		}
		receive(t, standby, remote, remoteText(login, "bob", "m-after", "after the leader died"))
		waitLeading(t, standby)
		took := time.Since(died)
		standby.WaitForText(room, "", "after the leader died")
		if took > testTakeover+testTakeover/5 {
			t.Errorf("the standby took over after %v, more than the %v configured", took, testTakeover)
		}
		select {
		case <-leader.Bridge().LostLeadership():
		case <-leader.Ctx().Done():
			t.Fatal("the old leader never noticed it lost the lease")
		}
		t.Logf("takeover after the leader's lease was lost: %v", took)
	})
}

func TestAProcessThatLostTheLeaseNeverSends(t *testing.T) {
	// A lease long enough that the leader does not renew during the test:
	// only the fence on its send can stop it.
	setupPair(t, 5*time.Minute, func(t *testing.T, leader, standby *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		_, room := chatWithBob(t, leader, remote, login)
		standby.Stop()
		// Another process takes the lease (its epoch grows) while the
		// leader still believes it leads; the leader is handed a message.
		db := openPostgres(t, leader)
		if _, err := db.ExecContext(leader.Ctx(),
			"UPDATE leader_lease SET holder = 'usurper', epoch = epoch + 1, expires_at = expires_at + 600000"); err != nil {
			t.Fatal(err)
		}
		leader.SendText(alice, room, "must not go out twice")
		select {
		case <-leader.Bridge().LostLeadership():
		case <-leader.Ctx().Done():
			t.Fatal("the fenced leader kept leading")
		}
		for _, c := range remote.Calls() {
			if strings.Contains(c.Text, "must not go out") {
				t.Fatalf("a process without the lease sent %+v", c)
			}
		}
	})
}

func openPostgres(t *testing.T, h *bridgetest.Harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", h.DatabaseURI())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, ""
}

func TestAStandbyTakesOverAtOnceWhenTheLeaderStopsCleanly(t *testing.T) {
	setupPair(t, time.Minute, func(t *testing.T, leader, standby *bridgetest.Harness, remote *testnet.Remote, login *bridgev2.UserLogin) {
		stopped := time.Now()
		leader.Stop()
		waitLeading(t, standby)
		// A minute-long lease: only the handover explains a quick takeover.
		if took := time.Since(stopped); took > 5*time.Second {
			t.Fatalf("the standby took over %v after a clean stop", took)
		}
	})
}
