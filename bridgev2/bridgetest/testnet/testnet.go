// Package testnet is a tiny in-memory network connector for testing the
// core without any real network: tests hand remote events in with Receive
// and read what the bridge sent out with WaitForCall. It implements every
// optional capability, so each core path has a target.
package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Call is something the bridge asked the network to do.
type Call struct {
	// Kind is "message", "edit", "reaction", "reaction_remove",
	// "redaction", "group_create", "member_add" or "member_remove".
	Kind   string
	Login  networkid.UserLoginID
	Portal networkid.PortalKey
	Text   string
	// Target is the remote message an edit, reaction, removal, redaction or
	// reply refers to.
	Target networkid.MessageID
	Emoji  string
	// Users are the members of a created group, or the one added or
	// removed.
	Users []networkid.UserID
	// MessageID is the remote ID given to a sent message.
	MessageID networkid.MessageID
	MediaURL  id.ContentURIString
	// SendToken is the core's token of the Matrix event.
	SendToken string
	// Resumed marks a message send that continued after parts an earlier
	// attempt sent.
	Resumed bool
}

// Remote is the shared "remote network" all connector instances of one
// test talk to; it survives bridge restarts.
type Remote struct {
	mu      sync.Mutex
	changed *sync.Cond
	calls   []Call
	counter int
	// failNext errors are returned by the next sends, in order.
	failNext []error
	bridges  []*Network
	// parts is how many remote messages each Matrix message becomes, as
	// with a long SMS split in several.
	parts int
	// duringSend, if set, runs inside HandleMatrixMessage after the
	// message got its remote ID and before the call returns, as a network
	// that reports back early would.
	duringSend func(Call)
	// download, if set, serves media downloads; see ServeMedia.
	download func(ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error)
	// downloads counts DownloadMedia calls.
	downloads int
	// failPart makes the next split send fail before part failPartAt.
	failPart   error
	failPartAt int
	// loseAnswers is how many of the next sends are carried out but
	// answered with an unconfirmed error, as when a reply is lost.
	loseAnswers int
	// byToken lists what was created for each send token, in order.
	byToken map[string][]bridgev2.SentMessage
	// findSents counts FindSent calls; foundBefore is, for each, how many
	// parts the journal already listed.
	findSents   int
	foundBefore []int
	// groups are the members of each group chat, by portal ID.
	groups map[networkid.PortalID][]networkid.UserID
}

// GroupID is the portal ID of the group of these members: "group:" and
// their names.
func GroupID(members ...networkid.UserID) networkid.PortalID {
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = string(m)
	}
	return networkid.PortalID("group:" + strings.Join(names, ","))
}

// AddGroup makes a group chat exist on the network, as if someone else
// had started it.
func (r *Remote) AddGroup(group networkid.PortalID, members ...networkid.UserID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups == nil {
		r.groups = map[networkid.PortalID][]networkid.UserID{}
	}
	r.groups[group] = slices.Clone(members)
}

// GroupMembers returns the members of a group chat as the network sees
// them.
func (r *Remote) GroupMembers(group networkid.PortalID) []networkid.UserID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.groups[group])
}

// ServeMedia makes the network's clients download media with fn. Without
// it they refuse, as a network without media does.
func (r *Remote) ServeMedia(fn func(ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.download = fn
}

// Downloads returns how many media downloads the clients made.
func (r *Remote) Downloads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.downloads
}

// SplitMessages makes every Matrix message become n remote messages, with
// IDs "<id>.0", "<id>.1", ..., as a network that splits long texts does.
func (r *Remote) SplitMessages(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = n
}

// DuringSend installs a hook that runs inside every message send, after
// the message got its ID and before the send returns to the core: for
// example to deliver a delivery report that overtakes the send's result.
func (r *Remote) DuringSend(fn func(Call)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.duringSend = fn
}

// FailPart makes the next split message send fail with err just before
// its part i, after the parts before it went out.
func (r *Remote) FailPart(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failPart, r.failPartAt = err, i
}

// LoseAnswers makes the next n sends (of any kind) reach the network but
// fail with an unconfirmed error, as when the network's answer is lost.
func (r *Remote) LoseAnswers(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loseAnswers = n
}

// FindSentCalls returns how often a client asked the network whether a
// send went through.
func (r *Remote) FindSentCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.findSents
}

// KnownBeforeFindSent returns, for each FindSent call, how many parts the
// core's journal already listed when it asked.
func (r *Remote) KnownBeforeFindSent() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.foundBefore...)
}

// errAnswerLost is what a send whose answer LoseAnswers swallowed returns.
var errAnswerLost = bridgev2.UnconfirmedError("The test network did not answer.", errors.New("answer lost"))

// created notes what the network created for a send token, and reports
// whether the answer is to be lost.
func (r *Remote) created(token string, sent bridgev2.SentMessage) (lost bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byToken == nil {
		r.byToken = map[string][]bridgev2.SentMessage{}
	}
	r.byToken[token] = append(r.byToken[token], sent)
	if r.loseAnswers > 0 {
		r.loseAnswers--
		return true
	}
	return false
}

// NewRemote returns an empty remote network.
func NewRemote() *Remote {
	r := &Remote{}
	r.changed = sync.NewCond(&r.mu)
	return r
}

// Connector returns a new connector instance bound to this remote, for
// bridgetest.New's factory.
func (r *Remote) Connector() bridgev2.NetworkConnector {
	n := &Network{remote: r}
	r.mu.Lock()
	r.bridges = append(r.bridges, n)
	r.mu.Unlock()
	return n
}

// FailNext makes the next sends (messages, edits, reactions, redactions)
// fail with the given errors, one each.
func (r *Remote) FailNext(errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = append(r.failNext, errs...)
}

func (r *Remote) record(c Call) (Call, error) {
	return r.recordAndApply(c, nil)
}

// recordAndApply records a call that, unless a FailNext error refuses it,
// changes the network with apply (under the lock, so a test that sees the
// call sees the change).
func (r *Remote) recordAndApply(c Call, apply func()) (Call, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failNext) > 0 {
		err := r.failNext[0]
		r.failNext = r.failNext[1:]
		return c, err
	}
	if apply != nil {
		apply()
	}
	r.counter++
	if c.Kind == "message" && c.MessageID == "" {
		c.MessageID = networkid.MessageID(fmt.Sprintf("out-%d", r.counter))
	}
	r.calls = append(r.calls, c)
	r.changed.Broadcast()
	return c, nil
}

// Calls returns everything the bridge did so far.
func (r *Remote) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// WaitForCall waits for a call matching pred.
func (r *Remote) WaitForCall(ctx context.Context, pred func(Call) bool) (Call, error) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.changed.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for _, c := range r.calls {
			if pred(c) {
				return c, nil
			}
		}
		if ctx.Err() != nil {
			return Call{}, fmt.Errorf("timed out waiting for a network call; calls so far: %+v", r.calls)
		}
		r.changed.Wait()
	}
}

// Receive hands a remote event to the newest bridge instance, through the
// login it names, like a webhook would.
func (r *Remote) Receive(ctx context.Context, evt *bridgev2.RemoteEvent) (bridgev2.IngestResult, error) {
	r.mu.Lock()
	n := r.bridges[len(r.bridges)-1]
	r.mu.Unlock()
	login := n.bridge.GetLogin(evt.Portal.Receiver)
	if login == nil {
		return 0, fmt.Errorf("no login %s", evt.Portal.Receiver)
	}
	return login.Ingest(ctx, evt)
}

// Network is the connector.
type Network struct {
	remote *Remote
	bridge *bridgev2.Bridge
}

// Info implements bridgev2.NetworkConnector.
func (n *Network) Info() bridgev2.NetworkInfo {
	return bridgev2.NetworkInfo{DisplayName: "Test network", ID: "testnet", URL: "https://example.com", DefaultUsernameTemplate: "test_{{.}}"}
}

// DBMetaTypes implements bridgev2.MetaTypesProvider.
func (n *Network) DBMetaTypes() database.MetaTypes {
	return database.MetaTypes{Login: func() any { return &LoginMetadata{} }}
}

// LoginMetadata is what a testnet login stores.
type LoginMetadata struct {
	Token string `json:"token"`
}

// Init implements bridgev2.NetworkConnector.
func (n *Network) Init(b *bridgev2.Bridge) error {
	n.bridge = b
	return nil
}

// LoginFlows implements bridgev2.NetworkConnector.
func (n *Network) LoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{ID: "token", Name: "Username and token", Description: "Any username; the token \"bad\" is refused."}}
}

// CreateLogin implements bridgev2.NetworkConnector.
func (n *Network) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != "token" {
		return nil, fmt.Errorf("unknown flow %q", flowID)
	}
	return &loginProcess{user: user}, nil
}

// LoadLogin implements bridgev2.NetworkConnector.
func (n *Network) LoadLogin(_ context.Context, login *bridgev2.UserLogin) (bridgev2.NetworkClient, error) {
	return &Client{network: n, login: login}, nil
}

type loginProcess struct {
	user *bridgev2.User
}

func (p *loginProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepUserInput, StepID: "credentials", Instructions: "Log in to the test network.",
		UserInput: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputField{
			{Type: bridgev2.LoginInputUsername, ID: "username", Name: "username", Pattern: `^[a-z0-9]+$`},
			{Type: bridgev2.LoginInputPassword, ID: "token", Name: "token"},
		}},
	}, nil
}

func (p *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	if input["token"] == "bad" {
		return nil, bridgev2.NewError("The test network rejected that token.", errors.New("bad token"))
	}
	login, err := p.user.NewLogin(ctx, bridgev2.NewLoginParams{
		ID: networkid.UserLoginID(input["username"]), RemoteName: input["username"],
		Metadata: &LoginMetadata{Token: input["token"]},
	})
	if err != nil {
		return nil, err
	}
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepComplete, StepID: "complete",
		Complete: &bridgev2.LoginCompleteParams{UserLoginID: string(login.ID), UserLogin: login},
	}, nil
}

func (p *loginProcess) Cancel() {}

// Client is a testnet login.
type Client struct {
	network *Network
	login   *bridgev2.UserLogin
}

var (
	_ bridgev2.SendReconciler    = (*Client)(nil)
	_ bridgev2.MediaDownloader   = (*Client)(nil)
	_ bridgev2.EditHandler       = (*Client)(nil)
	_ bridgev2.ReactionHandler   = (*Client)(nil)
	_ bridgev2.RedactionHandler  = (*Client)(nil)
	_ bridgev2.GroupCreator      = (*Client)(nil)
	_ bridgev2.MembershipHandler = (*Client)(nil)
)

// Connect implements bridgev2.Connectable.
func (c *Client) Connect(ctx context.Context) {
	c.login.SetState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateConnected})
}

// Disconnect implements bridgev2.Connectable.
func (c *Client) Disconnect() {}

// LogoutRemote implements bridgev2.RemoteLogouter.
func (c *Client) LogoutRemote(context.Context) {}

// DownloadMedia implements bridgev2.MediaDownloader with the function
// given to ServeMedia.
func (c *Client) DownloadMedia(_ context.Context, ref *bridgev2.MediaRef) (io.ReadCloser, *bridgev2.MediaInfo, error) {
	r := c.network.remote
	r.mu.Lock()
	fn := r.download
	r.downloads++
	r.mu.Unlock()
	if fn == nil {
		return nil, nil, bridgev2.NewError("This network cannot download media.", bridgev2.ErrUnsupported)
	}
	return fn(ref)
}

// HandleMatrixMessage implements bridgev2.NetworkClient. A split message
// records each part as soon as it is sent, after those an earlier attempt
// recorded, as a real split sender does.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	r := c.network.remote
	call := Call{Kind: "message", Login: c.login.ID, Portal: msg.Portal.PortalKey, Text: msg.Content.Body,
		MediaURL: msg.Content.URL, SendToken: msg.SendToken}
	if msg.ReplyTo != nil {
		call.Target = msg.ReplyTo.ID
	}
	done := msg.Progress.Sent()
	if len(done) > 0 {
		// Resuming: the parts keep the IDs their message got at first.
		call.MessageID = networkid.MessageID(strings.TrimSuffix(string(done[0].ID), ".0"))
		call.Resumed = true
	}
	call, err := r.record(call)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	hook, parts := r.duringSend, r.parts
	r.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	if parts <= 1 {
		sent := bridgev2.SentMessage{ID: call.MessageID, Timestamp: time.Now()}
		if r.created(msg.SendToken, sent) {
			return nil, errAnswerLost
		}
		return &bridgev2.MatrixMessageResponse{Messages: []bridgev2.SentMessage{sent}}, nil
	}
	for i := len(done); i < parts; i++ {
		r.mu.Lock()
		failure := r.failPart
		if failure != nil && r.failPartAt == i {
			r.failPart = nil
		} else {
			failure = nil
		}
		r.mu.Unlock()
		if failure != nil {
			return nil, failure
		}
		sent := bridgev2.SentMessage{ID: networkid.MessageID(fmt.Sprintf("%s.%d", call.MessageID, i)), PartID: networkid.PartID(fmt.Sprint(i)), Timestamp: time.Now()}
		if r.created(msg.SendToken, sent) {
			return nil, errAnswerLost
		}
		if err := msg.Progress.Record(ctx, sent); err != nil {
			return nil, err
		}
	}
	return &bridgev2.MatrixMessageResponse{DeliveryReported: true}, nil
}

// other records a call that is not a message and notes its token.
func (c *Client) other(call Call) error {
	call.Login = c.login.ID
	call, err := c.network.remote.record(call)
	if err != nil {
		return err
	}
	if c.network.remote.created(call.SendToken, bridgev2.SentMessage{ID: networkid.MessageID(call.Kind + ":" + call.SendToken)}) {
		return errAnswerLost
	}
	return nil
}

// HandleMatrixEdit implements bridgev2.EditHandler.
func (c *Client) HandleMatrixEdit(_ context.Context, edit *bridgev2.MatrixEdit) error {
	return c.other(Call{Kind: "edit", Portal: edit.Portal.PortalKey, Text: edit.NewContent.Body, Target: edit.Target.ID, SendToken: edit.SendToken})
}

// HandleMatrixReaction implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReaction(_ context.Context, r *bridgev2.MatrixReaction) (*bridgev2.MatrixReactionResponse, error) {
	return nil, c.other(Call{Kind: "reaction", Portal: r.Portal.PortalKey, Emoji: r.Emoji, Target: r.Target.ID, SendToken: r.SendToken})
}

// HandleMatrixReactionRemove implements bridgev2.ReactionHandler.
func (c *Client) HandleMatrixReactionRemove(_ context.Context, r *bridgev2.MatrixReactionRemove) error {
	return c.other(Call{Kind: "reaction_remove", Portal: r.Portal.PortalKey, Emoji: r.Target.Emoji, Target: r.Target.MessageID, SendToken: r.SendToken})
}

// HandleMatrixRedaction implements bridgev2.RedactionHandler.
func (c *Client) HandleMatrixRedaction(_ context.Context, r *bridgev2.MatrixRedaction) error {
	return c.other(Call{Kind: "redaction", Portal: r.Portal.PortalKey, Target: r.Target.ID, SendToken: r.SendToken})
}

// FindSent implements bridgev2.SendReconciler: the test network remembers
// what it created for each send token.
func (c *Client) FindSent(ctx context.Context, out bridgev2.OutgoingEvent, _ time.Time) (bool, error) {
	r := c.network.remote
	base := out.Base()
	r.mu.Lock()
	r.findSents++
	r.foundBefore = append(r.foundBefore, base.Progress.Count())
	created := append([]bridgev2.SentMessage(nil), r.byToken[base.SendToken]...)
	want := 1
	if _, ok := out.(*bridgev2.MatrixMessage); ok && r.parts > 1 {
		want = r.parts
	}
	r.mu.Unlock()
	for _, m := range created {
		if err := base.Progress.Record(ctx, m); err != nil {
			return false, err
		}
	}
	return len(created) >= want, nil
}

// ResolveIdentifier implements bridgev2.IdentifierResolver: any lowercase
// alphanumeric name is a user.
func (c *Client) ResolveIdentifier(_ context.Context, identifier string) (*bridgev2.ResolvedIdentifier, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" || strings.ToLower(identifier) != identifier || strings.ContainsAny(identifier, " @:") {
		return nil, bridgev2.NewError(fmt.Sprintf("%q is not a valid test network user name.", identifier), nil)
	}
	user := networkid.UserID(identifier)
	return &bridgev2.ResolvedIdentifier{
		UserID:   user,
		UserInfo: &bridgev2.UserInfo{Name: bridgev2.Ptr("Test user " + identifier)},
		Chat:     networkid.PortalKey{ID: networkid.PortalID(identifier), Receiver: c.login.ID},
		ChatInfo: &bridgev2.ChatInfo{IsDM: true, OtherUser: user, Name: bridgev2.Ptr("Test user " + identifier)},
	}, nil
}

// GetChatInfo implements bridgev2.ChatInfoProvider: a group lists its
// members; every other chat is a DM named after its peer.
func (c *Client) GetChatInfo(_ context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	if members := c.network.remote.GroupMembers(portal.ID); members != nil {
		return &bridgev2.ChatInfo{Members: members}, nil
	}
	return &bridgev2.ChatInfo{IsDM: true, OtherUser: networkid.UserID(portal.ID), Name: bridgev2.Ptr("Test user " + string(portal.ID))}, nil
}

// CreateGroup implements bridgev2.GroupCreator: a group of valid user
// names, with the portal ID GroupID gives them.
func (c *Client) CreateGroup(ctx context.Context, params *bridgev2.GroupParams) (*bridgev2.CreatedGroup, error) {
	var members []networkid.UserID
	for _, p := range params.Participants {
		resolved, err := c.ResolveIdentifier(ctx, p)
		if err != nil {
			return nil, err
		}
		members = append(members, resolved.UserID)
	}
	key := networkid.PortalKey{ID: GroupID(members...), Receiver: c.login.ID}
	r := c.network.remote
	if _, err := r.record(Call{Kind: "group_create", Login: c.login.ID, Portal: key, Users: members, Text: params.Name}); err != nil {
		return nil, err
	}
	r.AddGroup(key.ID, members...)
	info := &bridgev2.ChatInfo{Members: members}
	if params.Name != "" {
		info.Name = &params.Name
	}
	return &bridgev2.CreatedGroup{Chat: key, ChatInfo: info}, nil
}

// HandleMatrixMembership implements bridgev2.MembershipHandler: the user
// joins or leaves the group on the network.
func (c *Client) HandleMatrixMembership(_ context.Context, change *bridgev2.MatrixMembership) error {
	kind := "member_add"
	if change.Change == bridgev2.MembershipRemove {
		kind = "member_remove"
	}
	r := c.network.remote
	call := Call{Kind: kind, Login: c.login.ID, Portal: change.Portal.PortalKey, Users: []networkid.UserID{change.Target}, SendToken: change.SendToken}
	_, err := r.recordAndApply(call, func() {
		members := slices.DeleteFunc(slices.Clone(r.groups[change.Portal.ID]), func(u networkid.UserID) bool { return u == change.Target })
		if change.Change == bridgev2.MembershipAdd {
			members = append(members, change.Target)
		}
		r.groups[change.Portal.ID] = members
	})
	if err != nil {
		return err
	}
	if r.created(change.SendToken, bridgev2.SentMessage{ID: networkid.MessageID(kind + ":" + change.SendToken)}) {
		return errAnswerLost
	}
	return nil
}

// GetUserInfo implements bridgev2.UserInfoProvider.
func (c *Client) GetUserInfo(_ context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	return &bridgev2.UserInfo{Name: bridgev2.Ptr("Test user " + string(ghost.ID))}, nil
}
