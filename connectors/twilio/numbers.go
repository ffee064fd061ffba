package twilio

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// e164Pattern is the shape of a number as Twilio writes it: '+', a non-zero
// first digit, at most 15 digits.
var e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// errNotANumber is returned by the number parsers for input that is no phone
// number at all.
var errNotANumber = errors.New("not a phone number")

// NumberNames are the renderings of a phone number offered to
// network.displayname_template.
type NumberNames struct {
	// E164 is "+14155550100".
	E164 string
	// International is "+1 415-555-0100".
	International string
	// National is "(415) 555-0100".
	National string
}

// parseUserNumber parses a number a person typed ("(415) 555-0100",
// "+44 7700 900123", "tel:+1...") with region as the default country, and
// returns it in E.164. With requireValid it also checks the number against
// the numbering plan; without, only that its length is possible, which is
// what Twilio-supplied numbers need (new ranges must not be refused because
// the metadata is older than the number).
func parseUserNumber(input, region string, requireValid bool) (string, error) {
	s := strings.TrimSpace(input)
	s = strings.TrimPrefix(s, "tel:")
	if s == "" || len(s) > 64 {
		return "", errNotANumber
	}
	// A bare run of digits that starts with a country code ("14155550100",
	// the form of our own IDs) is tried as international first when the
	// national reading is not valid.
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", errNotANumber
	}
	if requireValid && !phonenumbers.IsValidNumber(num) && isDigits(s) {
		if alt, err := phonenumbers.Parse("+"+s, region); err == nil && phonenumbers.IsValidNumber(alt) {
			num = alt
		}
	}
	if requireValid && !phonenumbers.IsValidNumber(num) {
		return "", errNotANumber
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", errNotANumber
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if !e164Pattern.MatchString(e164) {
		return "", errNotANumber
	}
	// Odd national forms (extra zeros, letters) can format to an E.164
	// string that reads back as another number; such input is refused
	// rather than guessed at.
	if again, err := phonenumbers.Parse(e164, ""); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", errNotANumber
	}
	return e164, nil
}

// parseTwilioNumber checks a number Twilio sent (webhook From/To, list
// entries): it must already be E.164 and of a possible length.
func parseTwilioNumber(s string) (string, error) {
	if !e164Pattern.MatchString(s) {
		return "", errNotANumber
	}
	if _, ok := knownNumbers.Load(s); ok {
		return s, nil
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", errNotANumber
	}
	rememberNumber(s)
	return s, nil
}

// knownNumbers remembers numbers already found possible: the same contacts
// text again and again, and parsing a number with phonenumbers was half the
// cost of handling a webhook.
var (
	knownNumbers     sync.Map
	knownNumberCount atomic.Int64
)

// maxKnownNumbers bounds the cache; past it, it starts over.
const maxKnownNumbers = 100_000

func rememberNumber(e164 string) {
	if knownNumberCount.Add(1) > maxKnownNumbers {
		knownNumbers.Clear()
		knownNumberCount.Store(1)
	}
	knownNumbers.Store(e164, struct{}{})
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Prefixes of the IDs of senders that are not phone numbers, so that they
// can never be read as one.
const (
	shortCodeIDPrefix = "short-"
	alphaIDPrefix     = "alpha-"
)

// Senders that are not phone numbers: short codes ("12345", which send
// verification codes and marketing) and alphanumeric sender IDs ("GOOGLE":
// up to 11 letters, digits and spaces), which only send.
var (
	shortCodePattern = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaPattern     = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
)

// isAlphaSender reports whether s is an alphanumeric sender ID: the
// pattern, at least one letter, no space at either end.
func isAlphaSender(s string) bool {
	return alphaPattern.MatchString(s) && strings.ContainsFunc(s, unicode.IsLetter) && strings.TrimSpace(s) == s
}

// senderKind is what kind of address a remote sender has.
type senderKind int

const (
	senderPhone senderKind = iota
	senderShortCode
	senderAlpha
)

// parseSender checks the From of an inbound text: an E.164 number
// (long codes and toll-free numbers), a short code or an alphanumeric
// sender ID. Each gets its own portal.
func parseSender(s string) (string, senderKind, error) {
	if e164, err := parseTwilioNumber(s); err == nil {
		return e164, senderPhone, nil
	}
	switch {
	case shortCodePattern.MatchString(s):
		return s, senderShortCode, nil
	case isAlphaSender(s):
		return s, senderAlpha, nil
	}
	return "", 0, errNotANumber
}

// idFromAddr turns a sender's address into its remote ID: "+14155550100"
// becomes "14155550100" (IDs drop the '+' so ghost localparts read
// twilio_14155550100), "12345" "short-12345" and "GOOGLE" "alpha-GOOGLE".
func idFromAddr(addr string) string {
	switch {
	case strings.HasPrefix(addr, "+"):
		return addr[1:]
	case isDigits(addr):
		return shortCodeIDPrefix + addr
	default:
		return alphaIDPrefix + addr
	}
}

// userIDFromAddr is idFromAddr typed as a remote user ID.
func userIDFromAddr(addr string) networkid.UserID { return networkid.UserID(idFromAddr(addr)) }

// addrFromID reverses idFromAddr for every kind of sender, refusing
// anything that is not an ID this connector made.
func addrFromID(id string) (string, senderKind, error) {
	if s, ok := strings.CutPrefix(id, shortCodeIDPrefix); ok && shortCodePattern.MatchString(s) {
		return s, senderShortCode, nil
	}
	if s, ok := strings.CutPrefix(id, alphaIDPrefix); ok && isAlphaSender(s) {
		return s, senderAlpha, nil
	}
	e164, err := e164FromID(id)
	return e164, senderPhone, err
}

// replyRefusal is why a text cannot be sent to a sender that is not a
// phone number, or "" when it can. Twilio would refuse it (21211, 21265);
// saying so at once spares the user a retry and an error code.
func replyRefusal(addr string, kind senderKind) string {
	switch kind {
	case senderAlpha:
		return addr + " is an alphanumeric sender ID: it can send texts but cannot receive them, so replies cannot be sent."
	case senderShortCode:
		return addr + " is a short code: Twilio numbers cannot send texts to short codes, so replies cannot be sent."
	}
	return ""
}

// e164FromID reverses idFromAddr, refusing anything that is not an ID this
// connector made.
func e164FromID(id string) (string, error) {
	if !isDigits(id) {
		return "", errNotANumber
	}
	return parseTwilioNumber("+" + id)
}

// numberNames renders an E.164 number in every form the displayname
// template offers. Numbers the metadata does not know keep E.164 forms.
func numberNames(e164 string) NumberNames {
	names := NumberNames{E164: e164, International: e164, National: e164}
	if num, err := phonenumbers.Parse(e164, ""); err == nil {
		names.International = phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
		names.National = phonenumbers.Format(num, phonenumbers.NATIONAL)
	}
	return names
}

// formatNumber is the human form used in messages: "+1 415-555-0100".
func formatNumber(e164 string) string { return numberNames(e164).International }

// displayName renders network.displayname_template for a number.
func (c *Config) displayName(e164 string) string {
	if c.displayname == nil {
		return formatNumber(e164)
	}
	var sb strings.Builder
	if err := c.displayname.Execute(&sb, numberNames(e164)); err != nil || strings.TrimSpace(sb.String()) == "" {
		return formatNumber(e164)
	}
	return strings.TrimSpace(sb.String())
}
