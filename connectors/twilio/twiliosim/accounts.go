package twiliosim

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// e164Pattern is what Twilio accepts as a phone number: '+', a non-zero
// country code digit and up to 15 digits in all.
var e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ErrNotFound is returned (wrapped) by configuration methods that name an
// account, number or message the simulator does not have.
var ErrNotFound = errors.New("twiliosim: not found")

// Account is a handle on one simulated Twilio account.
type Account struct {
	s   *Server
	sid string
}

// AddAccount creates an account. An empty sid or authToken is generated.
// Auth tokens must be alphanumeric because twilio-go refuses anything else.
func (s *Server) AddAccount(sid, authToken string) (*Account, error) {
	if sid == "" {
		sid = newSID(prefixAccount)
	}
	if !isSID(sid, prefixAccount) {
		return nil, fmt.Errorf("twiliosim: account SID %q is not AC followed by 32 hex digits", sid)
	}
	if authToken == "" {
		authToken = randomHex(16)
	}
	if !alphanumeric(authToken) {
		return nil, fmt.Errorf("twiliosim: auth token for %s must be alphanumeric", sid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[sid]; ok {
		return nil, fmt.Errorf("twiliosim: account %s already exists", sid)
	}
	s.accounts[sid] = &account{
		sid:          sid,
		authToken:    authToken,
		friendlyName: "Trestle simulator account " + sid[len(sid)-6:],
		created:      s.nowLocked(),
		services:     map[string]*messagingService{},
		messageBySID: map[string]*message{},
		optOuts:      map[optOutKey]bool{},

		chatServiceSID: newSID(prefixChatService),
		roleSID:        newSID(prefixRole),
		convWebhook:    globalWebhook{method: "POST", target: "webhook"},
		mcs:            map[string]*mcsMedia{},
	}
	s.notifyLocked()
	return &Account{s: s, sid: sid}, nil
}

// Account returns a handle on an existing account, or nil.
func (s *Server) Account(sid string) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[sid]; !ok {
		return nil
	}
	return &Account{s: s, sid: sid}
}

// SID returns the account SID (AC...).
func (a *Account) SID() string { return a.sid }

// AuthToken returns the account's current auth token.
func (a *Account) AuthToken() string {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.s.accounts[a.sid].authToken
}

// RotateAuthToken replaces the auth token, as promoting a new token in the
// Twilio console does: the old one stops authenticating at once and webhooks
// and callbacks are signed with the new one. It returns the new token.
func (a *Account) RotateAuthToken() string {
	token := randomHex(16)
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.s.accounts[a.sid].authToken = token
	a.s.notifyLocked()
	return token
}

// AddAPIKey creates an API key for the account. An empty sid or secret is
// generated. The key SID and secret then work as basic-auth credentials for
// this account only.
func (a *Account) AddAPIKey(sid, secret string, kind APIKeyKind) (APIKey, error) {
	if sid == "" {
		sid = newSID(prefixAPIKey)
	}
	if !isSID(sid, prefixAPIKey) {
		return APIKey{}, fmt.Errorf("twiliosim: API key SID %q is not SK followed by 32 hex digits", sid)
	}
	if secret == "" {
		secret = randomHex(16)
	}
	if !alphanumeric(secret) {
		return APIKey{}, fmt.Errorf("twiliosim: API key secret for %s must be alphanumeric", sid)
	}
	key := APIKey{SID: sid, Secret: secret, Kind: kind}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if _, ok := a.s.keys[sid]; ok {
		return APIKey{}, fmt.Errorf("twiliosim: API key %s already exists", sid)
	}
	a.s.keys[sid] = apiKeyEntry{APIKey: key, accountSID: a.sid}
	return key, nil
}

// RemoveAPIKey deletes an API key; it stops authenticating at once.
func (a *Account) RemoveAPIKey(sid string) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if k, ok := a.s.keys[sid]; ok && k.accountSID == a.sid {
		delete(a.s.keys, sid)
	}
}

// AddNumber gives the account an incoming phone number (E.164) and returns
// its SID (PN...). Numbers are unique across the simulator, as on Twilio.
func (a *Account) AddNumber(e164 string, caps Capabilities) (string, error) {
	if !e164Pattern.MatchString(e164) {
		return "", fmt.Errorf("twiliosim: %q is not an E.164 phone number", e164)
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if _, ok := a.s.numbers[e164]; ok {
		return "", fmt.Errorf("twiliosim: number %s already belongs to an account", e164)
	}
	now := a.s.nowLocked()
	n := &phoneNumber{
		sid:                  newSID(prefixPhoneNumber),
		accountSID:           a.sid,
		e164:                 e164,
		friendlyName:         friendlyNumber(e164),
		caps:                 caps,
		smsMethod:            "POST",
		smsFallbackMethod:    "POST",
		statusCallbackMethod: "POST",
		voiceMethod:          "POST",
		voiceFallbackMethod:  "POST",
		created:              now,
		updated:              now,
	}
	acct := a.s.accounts[a.sid]
	acct.numbers = append(acct.numbers, n)
	a.s.numbers[e164] = n
	a.s.notifyLocked()
	return n.sid, nil
}

// RemoveNumber releases one of the account's numbers, as the console does:
// it is gone from the account's IncomingPhoneNumbers and fetching it
// answers 404.
func (a *Account) RemoveNumber(e164 string) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	n, ok := a.s.numbers[e164]
	if !ok || n.accountSID != a.sid {
		return fmt.Errorf("twiliosim: %s is not a number of account %s", e164, a.sid)
	}
	acct := a.s.accounts[a.sid]
	acct.numbers = slices.DeleteFunc(acct.numbers, func(m *phoneNumber) bool { return m == n })
	delete(a.s.numbers, e164)
	a.s.notifyLocked()
	return nil
}

// SetSMSURL sets the number's incoming-message webhook (sms_url), as the
// console or an IncomingPhoneNumbers update would.
func (a *Account) SetSMSURL(e164, url string) error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	n := a.s.accounts[a.sid].numberByE164(e164)
	if n == nil {
		return fmt.Errorf("twiliosim: number %s of account %s: %w", e164, a.sid, ErrNotFound)
	}
	n.smsURL = url
	n.updated = a.s.nowLocked()
	a.s.notifyLocked()
	return nil
}

// SMSURL returns the number's current incoming-message webhook URL.
func (a *Account) SMSURL(e164 string) (string, error) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	n := a.s.accounts[a.sid].numberByE164(e164)
	if n == nil {
		return "", fmt.Errorf("twiliosim: number %s of account %s: %w", e164, a.sid, ErrNotFound)
	}
	return n.smsURL, nil
}

// alphanumeric reports whether s is non-empty ASCII letters and digits only.
func alphanumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// friendlyNumber is Twilio's default friendly name: "(415) 555-0100" for
// North American numbers, the E.164 string otherwise.
func friendlyNumber(e164 string) string {
	if len(e164) == 12 && e164[:2] == "+1" {
		d := e164[2:]
		return "(" + d[:3] + ") " + d[3:6] + "-" + d[6:]
	}
	return e164
}
