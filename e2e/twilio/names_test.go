package twilio_test

import (
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

func TestAContactCanBeNamedWithSetNameOrByRenamingTheRoom(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	room := alice.chatWith(bob)
	displayName := func() string {
		profile, err := alice.Matrix.GetDisplayName(ctx(t), ghost(bob))
		if err != nil {
			t.Fatal(err)
		}
		return profile.DisplayName
	}
	waitName := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for displayName() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Bob's ghost is called %q, want %q", displayName(), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := displayName(); got != international(bob) {
		t.Fatalf("Bob's ghost is first called %q, want his number %q", got, international(bob))
	}

	sent := alice.Send(room, "!tw set-name Bob Builder")
	alice.WaitForMessageAfter(room, sent, bot(), "now called Bob Builder")
	waitName("Bob Builder")

	if _, err := alice.Matrix.SendStateEvent(ctx(t), room, event.StateRoomName, "", &event.RoomNameEventContent{Name: "Bob from work"}); err != nil {
		t.Fatal(err)
	}
	waitName("Bob from work")
	// Texts from him keep the name.
	alice.textFrom(bob, "Hi, it's Bob")
	alice.WaitForMessage(room, ghost(bob), "it's Bob")
	if got := displayName(); got != "Bob from work" {
		t.Errorf("after a text Bob's ghost is called %q", got)
	}
}

func TestAContactIsNamedAfterTheirCallerNameWithoutHoldingUpTheirText(t *testing.T) {
	alice := newPerson(t)
	alice.login("")
	bob := uniqueNumber()
	env.Sim.SetLookup(bob, twiliosim.LookupInfo{CallerName: "Robert Tables"})
	room := alice.chatWith(bob)
	deadline := time.Now().Add(30 * time.Second)
	for {
		profile, err := alice.Matrix.GetDisplayName(ctx(t), ghost(bob))
		if err != nil {
			t.Fatal(err)
		}
		if profile.DisplayName == "Robert Tables" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bob's ghost is called %q, want his caller name", profile.DisplayName)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Another text costs no second lookup.
	alice.textFrom(bob, "Bob again")
	alice.WaitForMessage(room, ghost(bob), "Bob again")
	if n := env.Sim.LookupCount(bob); n != 1 {
		t.Errorf("Bob's number was looked up %d times, want once", n)
	}
}
