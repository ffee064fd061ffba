package twiliosim

import (
	"regexp"
	"strings"
)

// Addresses on the Messages API: a phone number in E.164, a short code
// ("12345"), an alphanumeric sender ID ("GOOGLE"), or a channel address
// with a prefix: "whatsapp:+15551230001" and, for RCS, "rcs:+15551230001"
// (a phone) or "rcs:<agent id>" (an RCS sender).

// Channels a message can travel on, as Twilio's ChannelPrefix names them.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelRCS      = "rcs"
)

var (
	// shortCodePattern is a short code: a few digits and no '+'.
	shortCodePattern = regexp.MustCompile(`^[0-9]{3,8}$`)
	// alphaSenderPattern is an alphanumeric sender ID: up to 11 letters,
	// digits and spaces, at least one letter.
	alphaSenderPattern = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	// agentIDPattern is an RCS agent ID as it follows "rcs:".
	agentIDPattern = regexp.MustCompile(`^[a-z0-9_]{3,100}$`)
)

// splitAddress returns the channel of an address and the address without
// its channel prefix.
func splitAddress(addr string) (channel, bare string) {
	if rest, ok := strings.CutPrefix(addr, ChannelWhatsApp+":"); ok {
		return ChannelWhatsApp, rest
	}
	if rest, ok := strings.CutPrefix(addr, ChannelRCS+":"); ok {
		return ChannelRCS, rest
	}
	return ChannelSMS, addr
}

// isShortCode reports whether addr is a short code.
func isShortCode(addr string) bool { return shortCodePattern.MatchString(addr) }

// isAlphaSender reports whether addr is an alphanumeric sender ID.
func isAlphaSender(addr string) bool {
	return alphaSenderPattern.MatchString(addr) && strings.ContainsAny(strings.ToUpper(addr), "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}
