package twilio_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/matrixtest"
)

var counter atomic.Int64

// person is a Matrix user of the bridge with a Twilio account of their own.
type person struct {
	t       *testing.T
	*matrixtest.T
	ID      id.UserID
	Mgmt    id.RoomID
	Account *twiliosim.Account
	// Number is the person's Twilio number, E.164.
	Number string
}

func bot() id.UserID { return id.NewUserID("twiliobot", "localhost") }

// ghost is the Matrix ID of a remote phone number's puppet.
func ghost(e164 string) id.UserID {
	return id.NewUserID("twilio_"+strings.TrimPrefix(e164, "+"), "localhost")
}

// uniqueNumber returns a fresh valid US number for this test run.
func uniqueNumber() string {
	return fmt.Sprintf("+1415555%04d", counter.Add(1)%10000)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c
}

// newPerson creates a Matrix account and a Twilio account with the given
// SMS numbers (one fresh number if none are given), and opens the DM with
// the bridge bot.
func newPerson(t *testing.T, numbers ...string) *person {
	t.Helper()
	n := counter.Add(1)
	localpart := fmt.Sprintf("user%d", n)
	cli, err := env.NewUser(ctx(t), localpart, "password-"+localpart)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{t: t, T: matrixtest.StartForTest(t, cli, matrixtest.Options{AutoJoin: true}), ID: cli.UserID}
	p.Account, err = env.Sim.AddAccount("", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(numbers) == 0 {
		numbers = []string{uniqueNumber()}
	}
	for _, num := range numbers {
		if _, err := p.Account.AddNumber(num, twiliosim.Capabilities{SMS: true, MMS: true}); err != nil {
			t.Fatal(err)
		}
	}
	p.Number = numbers[0]
	p.Mgmt = p.DM(bot())
	p.WaitForMessage(p.Mgmt, bot(), "management room")
	return p
}

// command sends a command in the management room and returns the bot's
// reply containing want.
func (p *person) command(text, want string) *event.Event {
	p.t.Helper()
	sent := p.Send(p.Mgmt, text)
	return p.WaitForMessageAfter(p.Mgmt, sent, bot(), want)
}

// login logs in through the bot as a person would: send "login", answer
// each question. choose answers the number question if the account has
// several numbers.
func (p *person) login(choose string) {
	p.t.Helper()
	p.command("login", "Account SID")
	p.command(p.Account.SID(), "auth token")
	p.command(p.Account.AuthToken(), "API key SID")
	p.command("-", "API key secret")
	p.command("-", "Messaging Service SID")
	if choose == "" {
		p.command("-", "Logged in")
		return
	}
	p.command("-", "phone number")
	p.command(choose, "Logged in")
}

// portalFor waits for the invite to the portal with a remote number and
// for the person to have joined it.
func (p *person) portalFor(remote string) id.RoomID {
	p.t.Helper()
	inv := p.WaitForInvite(func(inv *matrixtest.Invite) bool { return inv.Sender == ghost(remote) })
	p.WaitForMembership(inv.RoomID, p.ID, event.MembershipJoin)
	return inv.RoomID
}

// text sends an SMS from a remote phone to the person's number and
// returns the simulator's result.
func (p *person) textFrom(remote, body string, media ...twiliosim.MediaFile) twiliosim.InboundResult {
	p.t.Helper()
	res, err := env.Sim.SendInbound(ctx(p.t), twiliosim.InboundMessage{From: remote, To: p.Number, Body: body, Media: media})
	if err != nil {
		p.t.Fatal(err)
	}
	return res
}

// waitOutbound waits for a message the bridge sent through Twilio.
func waitOutbound(t *testing.T, cond func(twiliosim.OutboundMessage) bool) twiliosim.OutboundMessage {
	t.Helper()
	var found twiliosim.OutboundMessage
	_, err := env.Sim.WaitOutbound(ctx(t), func(all []twiliosim.OutboundMessage) bool {
		for _, m := range all {
			if cond(m) {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// waitStatus waits for a message status event about eventID.
func (p *person) waitStatus(room id.RoomID, eventID id.EventID, pred func(*event.BeeperMessageStatusEventContent) bool) *event.BeeperMessageStatusEventContent {
	p.t.Helper()
	evt := p.WaitForEvent(room, func(e *event.Event) bool {
		if e.Type != event.BeeperMessageStatus {
			return false
		}
		c, ok := e.Content.Parsed.(*event.BeeperMessageStatusEventContent)
		return ok && c.RelatesTo.EventID == eventID && pred(c)
	})
	return evt.Content.Parsed.(*event.BeeperMessageStatusEventContent)
}
