package twiliosim

// RecipientBehavior is what happens to messages sent to a recipient.
type RecipientBehavior int

const (
	// Deliver: the message is sent, then delivered (the default).
	Deliver RecipientBehavior = iota
	// Unsubscribed: the recipient replied STOP; creating a message to it
	// fails with 400/21610.
	Unsubscribed
	// Landline: creating a message fails with 400/21614.
	Landline
	// InvalidNumber: creating a message fails with 400/21211.
	InvalidNumber
	// Undeliverable: the message is sent, then reported undelivered with
	// RecipientConfig.ErrorCode (30003 unreachable by default; 30005, 30006
	// and 30007 are the other usual ones).
	Undeliverable
	// FailToSend: the message goes straight to failed with
	// RecipientConfig.ErrorCode (30008 by default), never sent.
	FailToSend
)

// CallbackMode is how status callbacks for a message are posted.
type CallbackMode int

const (
	// CallbacksInOrder posts each status once, in order (the default).
	CallbacksInOrder CallbackMode = iota
	// CallbacksOutOfOrder posts the statuses newest first (delivered before
	// sent), as Twilio sometimes does.
	CallbacksOutOfOrder
	// CallbacksDuplicated posts every status twice.
	CallbacksDuplicated
	// CallbacksNone posts nothing; the message's status still progresses.
	CallbacksNone
)

// RecipientConfig configures how the simulated network treats one recipient.
type RecipientConfig struct {
	// Behavior is what happens to messages to the recipient.
	Behavior RecipientBehavior
	// ErrorCode is the 300xx code for Undeliverable and FailToSend.
	ErrorCode int
	// Callbacks is how status callbacks are posted for messages to it.
	Callbacks CallbackMode
	// RCSCapable says the recipient's phone takes RCS: messages to it
	// through a Messaging Service with an RCS sender go over RCS instead of
	// falling back to SMS.
	RCSCapable bool
}

// SetRecipient configures the behaviour for messages to the E.164 number,
// on every channel (SMS, WhatsApp, RCS).
func (s *Server) SetRecipient(e164 string, cfg RecipientConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recipients[e164] = cfg
}

// SetDefaultRecipient configures the behaviour for every recipient without
// its own configuration.
func (s *Server) SetDefaultRecipient(cfg RecipientConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultRecipient = cfg
}

// recipientLocked returns the configuration for a recipient.
func (s *Server) recipientLocked(e164 string) RecipientConfig {
	if cfg, ok := s.recipients[e164]; ok {
		return cfg
	}
	return s.defaultRecipient
}
