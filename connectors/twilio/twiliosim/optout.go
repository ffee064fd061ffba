package twiliosim

import (
	"slices"
	"strings"
)

// Opt-outs as Twilio's default opt-out handling does them: an inbound SMS
// whose whole body is an opt-out keyword blocks further messages from the
// sender (the Messaging Service when the number belongs to one, else the
// number) to that contact with error 21610, until the contact sends an
// opt-in keyword. The inbound webhook says which kind of keyword arrived
// in OptOutType, as Advanced Opt-Out does. Keywords match case-insensitively
// after trimming spaces; the confirmation texts Twilio replies with are not
// simulated.

// Values of the OptOutType webhook parameter.
const (
	OptOutTypeStop  = "STOP"
	OptOutTypeStart = "START"
	OptOutTypeHelp  = "HELP"
)

// optOutKeywords are Twilio's default keywords, by OptOutType.
var optOutKeywords = map[string][]string{
	OptOutTypeStop:  {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"},
	OptOutTypeStart: {"START", "YES", "UNSTOP"},
	OptOutTypeHelp:  {"HELP", "INFO"},
}

// optOutType returns the OptOutType of an inbound body, or "".
func optOutType(body string) string {
	word := strings.ToUpper(strings.TrimSpace(body))
	for kind, words := range optOutKeywords {
		if slices.Contains(words, word) {
			return kind
		}
	}
	return ""
}

// optOutKey names one opt-out: the scope that is blocked (a Messaging
// Service SID or a number) and the contact who opted out.
type optOutKey struct{ scope, contact string }

// optOutScope is what an opt-out to or from ourNumber blocks: its service
// when it belongs to one, else the number itself.
func (a *account) optOutScope(ourNumber string) string {
	if sid := a.serviceOf(ourNumber); sid != "" {
		return sid
	}
	return ourNumber
}

// applyOptOut records the effect of an inbound keyword.
func (a *account) applyOptOut(kind, ourNumber, contact string) {
	key := optOutKey{a.optOutScope(ourNumber), contact}
	switch kind {
	case OptOutTypeStop:
		a.optOuts[key] = true
	case OptOutTypeStart:
		delete(a.optOuts, key)
	}
}

// OptedOut reports whether contact has opted out of messages from sender,
// a number or a Messaging Service SID of the account.
func (a *Account) OptedOut(sender, contact string) bool {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	acct := a.s.accounts[a.sid]
	scope := sender
	if !strings.HasPrefix(sender, prefixMessagingService) {
		scope = acct.optOutScope(sender)
	}
	return acct.optOuts[optOutKey{scope, contact}]
}
