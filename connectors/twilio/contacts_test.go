package twilio

import (
	"testing"
)

func TestContactsAreTheNumbersTheLoginHasChatsWith(t *testing.T) {
	e := newEnv(t, envOptions{})
	ul := e.login()
	if got, err := twClient(ul).GetContacts(e.ctx()); err != nil || len(got) != 0 {
		t.Fatalf("contacts before any text: %v, %v", got, err)
	}
	e.inbound(theirNumber2, "hi, it's the second number")
	e.portalRoom(theirNumber2)
	if _, _, err := e.h.Bridge().CreateChat(e.ctx(), ul, theirNumber); err != nil {
		t.Fatal(err)
	}
	got, err := twClient(ul).GetContacts(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("contacts: %d, want both numbers", len(got))
	}
	for i, want := range []string{theirNumber, theirNumber2} {
		c := got[i]
		if c.UserID != userIDFromAddr(want) || c.UserInfo.Identifiers[0] != "tel:"+want || c.UserInfo.Name == nil || *c.UserInfo.Name == "" {
			t.Errorf("contact %d is %+v (%v), want %s with a name", i, c, c.UserInfo, want)
		}
	}
}
