package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// pageClient uses a running sandbox's JSON API as the page does.
type pageClient struct {
	t    *testing.T
	base string
}

func (c pageClient) form(path string, fields map[string]string) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	resp, err := http.Post(c.base+path, mw.FormDataContentType(), &buf)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		c.t.Fatalf("POST %s: HTTP %d %s", path, resp.StatusCode, e.Error)
	}
}

// waitMatrix long-polls the Matrix pane's state until cond holds.
func (c pageClient) waitMatrix(what string, cond func(matrixState) bool) matrixState {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var st matrixState
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("%s/api/matrix?since=%d", c.base, st.Version))
		if err != nil {
			c.t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		if cond(st) {
			return st
		}
	}
	c.t.Fatalf("waiting for %s; the Matrix pane shows %+v", what, st)
	return st
}

// portalWith returns the portal of a phone if it holds a message with body.
func portalWith(st matrixState, phone, body string) *matrixRoom {
	for i, r := range st.Rooms {
		if r.Kind == "portal" && r.Phone == phone && slices.ContainsFunc(r.Messages, func(m matrixMessage) bool { return m.Body == body }) {
			return &st.Rooms[i]
		}
	}
	return nil
}

// TestSandboxKeepsItsStateWithDir starts a sandbox in a directory twice: the
// second run has the same Matrix login, Twilio credentials, DM with the bot
// and portals, and texts still cross.
func TestSandboxKeepsItsStateWithDir(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: the sandbox runs Dendrite and the bridge, which -short leaves out")
	}
	dir := t.TempDir()
	start := func() *Sandbox {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		sb, err := Start(ctx, Options{Dir: dir, Listen: "127.0.0.1:0", Out: logWriter{t}})
		if err != nil {
			t.Fatalf("starting the sandbox: %v", err)
		}
		return sb
	}
	const phone = "+14155550177"

	first := start()
	c := pageClient{t: t, base: strings.TrimSuffix(first.PageURL, "/")}
	c.form("/api/phone/send", map[string]string{"from": phone, "body": "before the restart"})
	c.waitMatrix("the first text", func(st matrixState) bool { return portalWith(st, phone, "before the restart") != nil })
	first.Close()

	second := start()
	defer second.Close()
	if second.UserID != first.UserID || second.Password != first.Password || second.AccountSID != first.AccountSID ||
		second.AuthToken != first.AuthToken || second.ManagementRoom != first.ManagementRoom {
		t.Errorf("the second run differs:\nfirst  %s %s %s %s %s\nsecond %s %s %s %s %s",
			first.UserID, first.Password, first.AccountSID, first.AuthToken, first.ManagementRoom,
			second.UserID, second.Password, second.AccountSID, second.AuthToken, second.ManagementRoom)
	}
	c = pageClient{t: t, base: strings.TrimSuffix(second.PageURL, "/")}
	st := c.waitMatrix("the old portal", func(st matrixState) bool { return portalWith(st, phone, "before the restart") != nil })
	room := portalWith(st, phone, "before the restart").ID

	c.form("/api/phone/send", map[string]string{"from": phone, "body": "after the restart"})
	c.waitMatrix("the new text in the same portal", func(st matrixState) bool {
		r := portalWith(st, phone, "after the restart")
		return r != nil && r.ID == room
	})
	c.form("/api/matrix/send", map[string]string{"room": string(room), "body": "still here"})
	c.waitMatrix("the answer delivered", func(st matrixState) bool {
		r := portalWith(st, phone, "still here")
		if r == nil {
			return false
		}
		i := slices.IndexFunc(r.Messages, func(m matrixMessage) bool { return m.Body == "still here" })
		return r.Messages[i].Status != nil && r.Messages[i].Status.State == "delivered"
	})
}
