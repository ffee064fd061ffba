package sandbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// botReplyTimeout bounds each wait for the bridge bot to answer.
const botReplyTimeout = time.Minute

// botFailures start the bot's replies that end a login attempt; waiting on
// for the expected answer would then only run into the timeout.
var botFailures = []string{"Login failed", "That doesn't look like", "Unknown command", "You don't have permission", "There is nothing to cancel"}

// managementRoom returns the user's DM with the bridge bot: known, when the
// user and the bot are both still in it (a sandbox kept with -dir), or a new
// one opened the way Element opens a DM, once the bot has said hello.
func (m *matrixSide) managementRoom(ctx context.Context, known id.RoomID) (id.RoomID, error) {
	if known != "" && m.joined(known, m.me, m.bot) {
		return known, nil
	}
	resp, err := m.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:   "trusted_private_chat",
		IsDirect: true,
		Invite:   []id.UserID{m.bot},
	})
	if err != nil {
		return "", fmt.Errorf("opening a DM with %s: %w", m.bot, err)
	}
	// Clients list DMs from m.direct; Element shows the room as a DM then.
	direct := event.DirectChatsEventContent{}
	_ = m.cli.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct) // none yet on a new account
	direct[m.bot] = append(direct[m.bot], resp.RoomID)
	if err := m.cli.SetAccountData(ctx, event.AccountDataDirectChats.Type, direct); err != nil {
		return "", fmt.Errorf("recording the DM with %s in m.direct: %w", m.bot, err)
	}
	if _, err := m.waitBot(ctx, resp.RoomID, "", "management room"); err != nil {
		return "", fmt.Errorf("the bridge bot did not welcome %s in the new DM: %w", m.me, err)
	}
	return resp.RoomID, nil
}

// loginThroughBot logs the user in to the bridge as a person would: `login`
// in the management room, then one answer per question (Account SID and
// auth token; the API key and Messaging Service are only asked by "login
// advanced"). It returns the bot's final "Logged in ..." reply.
func (m *matrixSide) loginThroughBot(ctx context.Context, room id.RoomID, accountSID, authToken string) (string, error) {
	steps := []struct{ say, want string }{
		// The first reply names the flows, Account SID among them; wait
		// for the question itself.
		{"login", "send your **Account SID**"},
		{accountSID, "auth token"},
		{authToken, "Logged in"},
	}
	var reply string
	for _, s := range steps {
		sent, err := m.cli.SendText(ctx, room, s.say)
		if err != nil {
			return "", fmt.Errorf("sending %q to the bridge bot: %w", redactSecret(s.say, authToken), err)
		}
		if reply, err = m.waitBot(ctx, room, sent.EventID, s.want); err != nil {
			return "", fmt.Errorf("after %q: %w", redactSecret(s.say, authToken), err)
		}
	}
	return reply, nil
}

// redactSecret keeps the auth token out of error messages.
func redactSecret(s, secret string) string {
	if s == secret {
		return "<auth token>"
	}
	return s
}

// waitBot waits for a message from the bot after the event after (from the
// start of the room when empty) that contains want, and returns its body.
// Other bot messages, such as a notice about the login's state, are passed
// over, except replies that say the login failed.
func (m *matrixSide) waitBot(ctx context.Context, room id.RoomID, after id.EventID, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, botReplyTimeout)
	defer cancel()
	var failure string
	evt, err := m.user.WaitForEventAfter(ctx, room, after, func(evt *event.Event) bool {
		if evt.Type != event.EventMessage || evt.Sender != m.bot {
			return false
		}
		body := evt.Content.AsMessage().Body
		// Failures first: "Login failed: ... auth token." also mentions
		// what the next question would ask for.
		for _, f := range botFailures {
			if strings.HasPrefix(body, f) {
				failure = body
				return true
			}
		}
		return strings.Contains(body, want)
	})
	switch {
	case err != nil:
		return "", fmt.Errorf("waiting for the bridge bot to say %q: %w", want, err)
	case failure != "":
		return "", fmt.Errorf("the bridge bot answered: %s", failure)
	}
	return evt.Content.AsMessage().Body, nil
}
