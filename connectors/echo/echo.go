// Package echo is a network without a remote side, for demos and for trying
// a homeserver set-up without any remote account. A login needs only a
// name; every contact is made up: `start-chat bob` opens a DM with bob, and
// the contacts named at login write first, so their rooms arrive as
// invites. A contact types for network.think_time, then answers a text
// with "You said: ..." (network.reply_prefix), an image or file with the
// same attachment, an edit by editing its answer, a reaction with the same
// reaction, a removed reaction by removing its own and a deletion by
// deleting its answer; it reports each message delivered.
//
// Answers are remote events like any network's, journalled before the
// send they answer counts as done; their IDs derive from the send token,
// so a send repeated after a crash is answered once. IDs: a login is its
// name; a contact is "<login>.<name>", private to the login (names hold no
// dot, so no contact shares a login's ID); a chat is the contact's name;
// the user's messages are "u.<send token>", the answers "e.<send token>".
package echo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// ExampleConfigFile is the full example config file of an echo bridge, for
// bridgemain.Main: the core's sections, then the echo network's.
//
//go:embed example-config.yaml
var ExampleConfigFile []byte

// Config is the network section of the config file.
type Config struct {
	ReplyPrefix string        `yaml:"reply_prefix"`
	ThinkTime   time.Duration `yaml:"think_time"`
}

// LoginMetadata is what an echo login stores.
type LoginMetadata struct {
	// Greet lists the contacts still to write first, emptied once their
	// greetings are journalled: they greet once, whatever the journal keeps.
	Greet []string `json:"greet,omitempty"`
}

// validName is a login or contact name: short, and readable in a Matrix ID.
var validName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// Network is the echo connector.
type Network struct {
	cfg Config
}

// New returns a connector with the defaults of the example config.
func New() *Network {
	return &Network{cfg: Config{ReplyPrefix: "You said: ", ThinkTime: time.Second}}
}

// Info implements bridgev2.NetworkConnector.
func (n *Network) Info() bridgev2.NetworkInfo {
	return bridgev2.NetworkInfo{DisplayName: "Echo", ID: "echo", DefaultUsernameTemplate: "echo_{{.}}",
		URL: "https://github.com/trestle-bridge/trestle"}
}

// Config implements bridgev2.ConfigProvider.
func (n *Network) Config() any { return &n.cfg }

// ValidateConfig implements bridgev2.ConfigValidator. A contact thinks in the
// chat's outbound worker: a long think_time holds up the chat and shutdown.
func (n *Network) ValidateConfig() error {
	if n.cfg.ThinkTime < 0 || n.cfg.ThinkTime > time.Minute {
		return fmt.Errorf("network.think_time must be between 0s and 1m, not %s", n.cfg.ThinkTime)
	}
	return nil
}

// DBMetaTypes implements bridgev2.MetaTypesProvider.
func (n *Network) DBMetaTypes() database.MetaTypes {
	return database.MetaTypes{Login: func() any { return &LoginMetadata{} }}
}

// Init implements bridgev2.NetworkConnector.
func (n *Network) Init(*bridgev2.Bridge) error { return nil }

// LoginFlows implements bridgev2.NetworkConnector.
func (n *Network) LoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{ID: "name", Name: "Name", Description: "Any name: there is no account to check."}}
}

// CreateLogin implements bridgev2.NetworkConnector.
func (n *Network) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != "name" {
		return nil, fmt.Errorf("unknown login flow %q", flowID)
	}
	return &bridgev2.FormLogin{User: user, Submit: submitLogin,
		Instructions: "The echo network has no accounts: pick a name, and every contact you make up echoes you.",
		Fields: []bridgev2.LoginInputField{
			{Type: bridgev2.LoginInputUsername, ID: "name", Name: "Name", Description: "lowercase letters, digits, - and _"},
			{Type: bridgev2.LoginInputUsername, ID: "contacts", Name: "Contacts", Optional: true,
				Description: "names of contacts who write to you first, separated by spaces"},
		}}, nil
}

// submitLogin checks the names of the login form.
func submitLogin(_ context.Context, input map[string]string) (bridgev2.NewLoginParams, string, error) {
	names := append([]string{input["name"]}, strings.Fields(input["contacts"])...)
	for i := range names {
		var err error
		if names[i], err = checkName(names[i]); err != nil {
			return bridgev2.NewLoginParams{}, "", err
		}
	}
	return bridgev2.NewLoginParams{ID: networkid.UserLoginID(names[0]), RemoteName: names[0],
		Metadata: &LoginMetadata{Greet: names[1:]}}, "Send `start-chat <name>` to talk to anyone: every contact echoes you.", nil
}

// checkName turns a login or contact name as typed into the name.
func checkName(typed string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(typed))
	if !validName.MatchString(name) {
		return "", bridgev2.NewError(fmt.Sprintf("%q cannot be an echo name: use 1 to 32 letters, digits, - or _.", typed), nil)
	}
	return name, nil
}

// LoadLogin implements bridgev2.NetworkConnector.
func (n *Network) LoadLogin(_ context.Context, login *bridgev2.UserLogin) (bridgev2.NetworkClient, error) {
	return &Client{cfg: n.cfg, login: login}, nil
}

// Client is one echo login. Its contacts answer from inside the send they
// answer, so that the answer is journalled before the send counts as done.
type Client struct {
	cfg   Config
	login *bridgev2.UserLogin
}

// Connect implements bridgev2.Connectable: the contacts named at login
// write first. Should that fail, the next start tries again, and the core
// drops the greetings it already has.
func (c *Client) Connect(ctx context.Context) {
	if err := c.greet(ctx); err != nil {
		c.login.Log.Err(err).Msg("Could not journal the contacts' greetings")
		c.login.SetState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateUnknownError,
			Message: "Your contacts could not say hello; restart the bridge to try again."})
		return
	}
	c.login.SetState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateConnected})
}

func (c *Client) greet(ctx context.Context) error {
	for _, name := range c.login.Metadata.(*LoginMetadata).Greet {
		_, err := c.login.Ingest(ctx, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteMessage,
			ID:     networkid.MessageID("hello." + string(c.login.ID) + "." + name),
			Portal: c.portal(name), Sender: c.contact(name), Timestamp: time.Now(),
			Parts: []bridgev2.MessagePart{{Text: "Hi, I'm " + name + ". Send me anything and I will echo it."}}})
		if err != nil {
			return err
		}
	}
	return c.login.UpdateMetadata(ctx, func(m any) { m.(*LoginMetadata).Greet = nil })
}

// Disconnect implements bridgev2.Connectable.
func (c *Client) Disconnect() {}

// ResolveIdentifier implements bridgev2.IdentifierResolver: every valid
// name is a contact.
func (c *Client) ResolveIdentifier(_ context.Context, identifier string) (*bridgev2.ResolvedIdentifier, error) {
	name, err := checkName(identifier)
	if err != nil {
		return nil, err
	}
	who := c.contact(name)
	return &bridgev2.ResolvedIdentifier{UserID: who.Sender, UserInfo: who.Info, Chat: c.portal(name),
		ChatInfo: &bridgev2.ChatInfo{IsDM: true, OtherUser: who.Sender}}, nil
}

func (c *Client) portal(name string) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(name), Receiver: c.login.ID}
}

func (c *Client) contact(name string) bridgev2.EventSender {
	return bridgev2.EventSender{Sender: networkid.UserID(string(c.login.ID) + "." + name),
		Info: &bridgev2.UserInfo{Name: bridgev2.Ptr(name + " (echo)")}}
}

// HandleMatrixMessage implements bridgev2.NetworkClient: the contact types
// for think_time, answers, stops typing and reports the message delivered.
// If the bridge stops meanwhile, the core sends the message again later.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	sent := networkid.MessageID("u." + msg.SendToken)
	events := []*bridgev2.RemoteEvent{{Kind: bridgev2.RemoteMessage, Parts: []bridgev2.MessagePart{c.echoText(msg.Content)}},
		{Kind: bridgev2.RemoteDeliveryStatus, Target: sent,
			Status: &bridgev2.DeliveryStatus{State: database.DeliveryDelivered, SendToken: msg.SendToken}}}
	if msg.Content.URL != "" {
		events[0].Parts[0] = bridgev2.MessagePart{Text: msg.Content.GetCaption(),
			Media: &bridgev2.MediaRef{URL: string(msg.Content.URL), Filename: msg.Content.GetFileName()}}
	}
	if c.cfg.ThinkTime > 0 {
		if err := c.answer(ctx, &msg.Outgoing, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteTyping, Typing: c.cfg.ThinkTime}); err != nil {
			return nil, err
		}
		select {
		case <-time.After(c.cfg.ThinkTime):
		case <-ctx.Done():
			return nil, bridgev2.RetriableError("The echo was interrupted while thinking.", ctx.Err())
		}
		events = append(events, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteTyping})
	}
	if err := c.answer(ctx, &msg.Outgoing, events...); err != nil {
		return nil, err
	}
	return &bridgev2.MatrixMessageResponse{Messages: []bridgev2.SentMessage{{ID: sent, Timestamp: time.Now()}}, DeliveryReported: true}, nil
}

// echoText is the contact's answer to a text, formatting kept.
func (c *Client) echoText(content *event.MessageEventContent) bridgev2.MessagePart {
	part := bridgev2.MessagePart{Text: c.cfg.ReplyPrefix + content.Body}
	if content.Format == event.FormatHTML {
		part.HTML = html.EscapeString(c.cfg.ReplyPrefix) + content.FormattedBody
	}
	return part
}

// answer hands the contact's events to the core. Their IDs derive from the
// send token, so the answers to a repeated send are dropped as duplicates.
func (c *Client) answer(ctx context.Context, out *bridgev2.Outgoing, events ...*bridgev2.RemoteEvent) error {
	for _, evt := range events {
		evt.Portal, evt.Sender, evt.Timestamp = out.Portal.PortalKey, c.contact(string(out.Portal.ID)), time.Now()
		if evt.Kind != bridgev2.RemoteTyping && evt.Kind != bridgev2.RemoteDeliveryStatus {
			evt.ID = networkid.MessageID("e." + out.SendToken)
		}
		if _, err := c.login.Ingest(ctx, evt); errors.Is(err, bridgev2.ErrInvalidEvent) {
			return bridgev2.NewError("The echo could not answer that.", err)
		} else if err != nil {
			return bridgev2.RetriableError("The echo could not answer yet.", err)
		}
	}
	return nil
}

// answerTo is the contact's answer to one of the user's messages; the
// contact's own messages have none.
func answerTo(msg networkid.MessageID) (networkid.MessageID, bool) {
	token, ok := strings.CutPrefix(string(msg), "u.")
	return networkid.MessageID("e." + token), ok
}

// HandleMatrixEdit implements bridgev2.EditHandler: the answer is edited.
func (c *Client) HandleMatrixEdit(ctx context.Context, edit *bridgev2.MatrixEdit) error {
	target, ok := answerTo(edit.Target.ID)
	if !ok {
		return bridgev2.UnsupportedError("Only your own messages can be edited.")
	}
	return c.answer(ctx, &edit.Outgoing, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteEdit, Target: target,
		Parts: []bridgev2.MessagePart{c.echoText(edit.NewContent)}})
}

// HandleMatrixReaction implements bridgev2.ReactionHandler: the contact
// adds the same reaction to the same message.
func (c *Client) HandleMatrixReaction(ctx context.Context, r *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	return nil, c.answer(ctx, &r.Outgoing, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReaction,
		Target: r.Target.ID, TargetPart: &r.Target.PartID, Emoji: r.Emoji})
}

// HandleMatrixReactionRemove implements bridgev2.ReactionHandler: the
// contact removes its own.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, r *bridgev2.MatrixReactionRemove) error {
	return c.answer(ctx, &r.Outgoing, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteReactionRemove,
		Target: r.Target.MessageID, TargetPart: &r.Target.MessagePartID, Emoji: r.Target.Emoji, EmojiID: r.Target.EmojiID})
}

// HandleMatrixRedaction implements bridgev2.RedactionHandler: the answer to
// a deleted message is deleted; deleting an answer changes nothing else.
func (c *Client) HandleMatrixRedaction(ctx context.Context, r *bridgev2.MatrixRedaction) error {
	if target, ok := answerTo(r.Target.ID); ok {
		return c.answer(ctx, &r.Outgoing, &bridgev2.RemoteEvent{Kind: bridgev2.RemoteDelete, Target: target})
	}
	return nil
}

// DownloadMedia implements bridgev2.MediaDownloader: the attachments the
// contacts send back are the user's own, still on the homeserver.
func (c *Client) DownloadMedia(ctx context.Context, ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	return c.login.Bridge.Matrix.Download(ctx, id.ContentURIString(ref.URL))
}
