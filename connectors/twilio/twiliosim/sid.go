package twiliosim

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

// SID prefixes used by the resources the simulator serves.
const (
	prefixAccount             = "AC"
	prefixPhoneNumber         = "PN"
	prefixSMS                 = "SM"
	prefixMMS                 = "MM"
	prefixMedia               = "ME"
	prefixMessagingService    = "MG"
	prefixAPIKey              = "SK"
	prefixChannelSender       = "XE"
	prefixContent             = "HX"
	prefixConversation        = "CH"
	prefixParticipant         = "MB"
	prefixConversationMessage = "IM"
	prefixReceipt             = "DY"
	prefixWebhook             = "WH"
	prefixChatService         = "IS"
	prefixRole                = "RL"
)

// sidPattern is the shape every Twilio SID has: two upper-case letters and 32
// hex digits. Twilio itself emits lower-case hex, so do we.
var sidPattern = regexp.MustCompile(`^[A-Z]{2}[0-9a-fA-F]{32}$`)

// newSID returns a random SID with the given two-letter prefix.
func newSID(prefix string) string {
	return prefix + randomHex(16)
}

// randomHex returns n random bytes as lower-case hex. crypto/rand never fails
// on supported platforms (it panics internally if it would), so there is no
// error to return.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// isSID reports whether s is a SID with the given prefix.
func isSID(s, prefix string) bool {
	return len(s) == 34 && s[:2] == prefix && sidPattern.MatchString(s)
}
