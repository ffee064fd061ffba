package twilio

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"golang.org/x/time/rate"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Client is one logged-in Twilio number: the bridgev2.NetworkClient plus the
// optional capabilities the core discovers by type assertion.
type Client struct {
	conn    *Connector
	login   *bridgev2.UserLogin
	loginID networkid.UserLoginID
	// own is the number in E.164; the other fields come from the stored
	// metadata and never change for the life of this client (a new login
	// makes a new client).
	own string
	// whatsapp is the number of the login's WhatsApp sender (E.164), or
	// empty.
	whatsapp   string
	accountSID string
	authToken  string
	serviceSID string
	numberSID  string
	// whatsappOnly is set for a login of a WhatsApp sender alone: it has
	// no SMS number.
	whatsappOnly bool
	webhookURL   string
	// groupDeliveries says Twilio reports the delivery of this login's
	// group texts (see checkGroupDeliveries).
	groupDeliveries atomic.Bool

	// rest authenticates with the login's REST credentials; tokenRest with
	// the auth token (webhooks depend on it, so Connect verifies it too).
	// bgRest is rest without the unreachable hook, for the connection loop
	// itself.
	rest      *restClient
	tokenRest *restClient
	bgRest    *restClient
	limiter   *rate.Limiter
	log       zerolog.Logger

	// persistMu serialises SetState, Save and writes to meta: the core
	// copies the login row without a lock of its own when it saves.
	persistMu sync.Mutex
	meta      *LoginMetadata
	// retired is set when a new login of the same number replaced this
	// client: its row is not its own any more.
	retired bool

	// wmMu guards the catch-up watermark kept in memory.
	wmMu        sync.Mutex
	watermark   time.Time
	wmDirty     bool
	failGen     uint64    // counts webhooks whose Ingest failed
	resolvedGen uint64    // failGen as of the start of the last complete catch-up
	caughtUp    bool      // a catch-up has completed since this client started
	lastHeard   time.Time // when an incoming webhook was last journalled

	// catchUpSem serialises catch-ups (the connection loop's and those a
	// webhook runs first, see catchUpFirst); a channel, so that waiting for
	// it respects a context.
	catchUpSem chan struct{}
	// firstMu guards the webhook-triggered catch-up below.
	firstMu sync.Mutex
	// firstRunning is closed when the running webhook-triggered catch-up
	// ends; nil when none runs.
	firstRunning chan struct{}
	// firstFailed is when the last webhook-triggered catch-up failed.
	firstFailed time.Time

	runMu     sync.Mutex
	runCtx    context.Context
	runCancel context.CancelFunc
	runDone   chan struct{}
	// background counts the goroutines that run on runCtx besides the
	// connection loop (background lookups); Disconnect waits for them.
	background sync.WaitGroup
	kick       chan struct{}
	reconnect  atomic.Bool

	// rcsMu guards rcs, the RCS senders of the login's Messaging Service,
	// once rcsListed.
	rcsMu     sync.Mutex
	rcs       []string
	rcsListed bool

	// catchUps counts completed catch-ups, for tests.
	catchUps atomic.Int64
}

var (
	_ bridgev2.NetworkClient        = (*Client)(nil)
	_ bridgev2.Connectable          = (*Client)(nil)
	_ bridgev2.RemoteLogouter       = (*Client)(nil)
	_ bridgev2.IdentifierResolver   = (*Client)(nil)
	_ bridgev2.ChatInfoProvider     = (*Client)(nil)
	_ bridgev2.UserInfoProvider     = (*Client)(nil)
	_ bridgev2.EditHandler          = (*Client)(nil)
	_ bridgev2.ReactionHandler      = (*Client)(nil)
	_ bridgev2.RedactionHandler     = (*Client)(nil)
	_ bridgev2.Backfiller           = (*Client)(nil)
	_ bridgev2.ContactLister        = (*Client)(nil)
	_ bridgev2.RoomFeaturesProvider = (*Client)(nil)
	_ bridgev2.MediaDownloader      = (*Client)(nil)
	_ bridgev2.SendReconciler       = (*Client)(nil)
)

func newClient(conn *Connector, login *bridgev2.UserLogin, meta *LoginMetadata) *Client {
	c := &Client{
		conn:         conn,
		login:        login,
		loginID:      login.ID,
		own:          meta.PhoneNumber,
		whatsapp:     meta.WhatsAppNumber,
		accountSID:   meta.AccountSID,
		authToken:    meta.AuthToken,
		serviceSID:   meta.MessagingServiceSID,
		numberSID:    meta.PhoneNumberSID,
		whatsappOnly: meta.WhatsAppOnly,
		webhookURL:   meta.WebhookURL,
		meta:         meta,
		watermark:    meta.CatchUpSince,
		kick:         make(chan struct{}, 1),
		catchUpSem:   make(chan struct{}, 1),
	}
	c.log = login.Log.With().Str("component", "twilio").Logger() // login.Log carries login_id
	c.rest = &restClient{conn: conn, creds: meta.restCreds(), log: c.log,
		onBadCredentials: c.badCredentials, onUnreachable: c.unreachable}
	c.tokenRest = &restClient{conn: conn, creds: meta.tokenCreds(), log: c.log, onBadCredentials: c.badCredentials}
	c.bgRest = &restClient{conn: conn, creds: meta.restCreds(), log: c.log, onBadCredentials: c.badCredentials}
	if r := conn.cfg.MaxSendRate; r > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(r), 1)
	}
	return c
}

// setState changes the login's bridge state; see persistMu.
func (c *Client) setState(ctx context.Context, st bridgev2.BridgeState) {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	if c.retired {
		return
	}
	c.login.SetState(ctx, st)
}

// badCredentials is the REST hook for 401/20003.
func (c *Client) badCredentials(ctx context.Context, _ *restError) {
	c.setState(ctx, bridgev2.BridgeState{
		StateEvent: bridgev2.StateBadCredentials,
		Error:      "twilio-20003",
		Message:    "Twilio rejected the auth token (or API key) of " + formatNumber(c.own) + "; log in again with current credentials.",
	})
}

// unreachable is the REST hook for calls that gave up on 5xx or network
// failures: the login is reported disconnected and the connection loop
// verifies, reconnects and catches up.
func (c *Client) unreachable(re *restError) {
	if c.login.State().StateEvent == bridgev2.StateConnected {
		c.setState(context.Background(), bridgev2.BridgeState{
			StateEvent: bridgev2.StateTransientDisconnect,
			Error:      "twilio-unreachable",
			Message:    "Twilio could not be reached; messages will be retried.",
		})
	}
	c.reconnect.Store(true)
	c.wake()
}

// wake asks the connection loop to reconnect or catch up.
func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Connect starts the connection loop in the background and returns: the
// core calls it synchronously right after a login, which must not wait for
// Twilio. The loop verifies the credentials, reports CONNECTED and catches
// up on messages whose webhook never made it, then again after every failed
// webhook and every network.reconcile_interval.
func (c *Client) Connect(ctx context.Context) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.runCancel != nil {
		return
	}
	runCtx, cancel := context.WithCancel(c.log.WithContext(ctx))
	c.runCtx, c.runCancel, c.runDone = runCtx, cancel, make(chan struct{})
	go c.run(runCtx, c.runDone)
}

// Disconnect stops the connection loop and the background lookups, and
// waits for them.
func (c *Client) Disconnect() {
	c.runMu.Lock()
	cancel, done := c.runCancel, c.runDone
	c.runCtx, c.runCancel, c.runDone = nil, nil, nil
	c.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	c.background.Wait()
}

// run is the connection loop.
func (c *Client) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer c.saveWatermark(context.WithoutCancel(ctx), true)
	delay := c.conn.reconnectBase
	connected, needCatchUp := false, true
	// Webhooks that never reached the bridge leave no trace but the log:
	// list it regularly. The first time is random in the second half of
	// the interval, so that logins that started together do not all list
	// at once ever after.
	interval := c.conn.cfg.ReconcileInterval
	reconcile := time.NewTimer(interval/2 + rand.N(interval/2+1))
	defer reconcile.Stop()
	sleep := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(delay*2, c.conn.reconnectMax)
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		if !connected {
			err := c.conn.bounded(ctx, func() error { return c.verify(ctx) })
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				var be *bridgev2.Error
				if errors.As(err, &be) && !be.Retriable {
					// Bad credentials or a number gone from the account:
					// only a new login fixes that; its state says so.
					c.log.Warn().Err(err).Msg("Twilio login cannot connect")
					return
				}
				c.setState(ctx, bridgev2.BridgeState{
					StateEvent: bridgev2.StateTransientDisconnect, Error: "twilio-unreachable",
					Message: "Twilio could not be reached; retrying in the background.",
				})
				c.log.Warn().Err(err).Dur("retry_in", delay).Msg("Could not connect to Twilio")
				if !sleep() {
					return
				}
				continue
			}
			connected, needCatchUp = true, true
			c.setState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateConnected})
		}
		if needCatchUp {
			if err := c.conn.bounded(ctx, func() error { return c.catchUp(ctx, false) }); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Warn().Err(err).Dur("retry_in", delay).Msg("Catch-up failed; will retry")
				if re := asRestError(err); re != nil && (re.Network || re.Status >= 500) {
					connected = false
				}
				if !sleep() {
					return
				}
				continue
			}
			needCatchUp = false
			delay = c.conn.reconnectBase
		}
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			if c.reconnect.Swap(false) {
				connected = false
			}
			needCatchUp = true
		case <-reconcile.C:
			reconcile.Reset(interval)
			// Only the leader delivers; a standby's catch-up would only
			// journal what the leader's finds too.
			needCatchUp = c.conn.bridge.Leading()
		}
	}
}

// verify checks the auth token (webhooks are validated with it, so it
// matters even when REST calls use an API key), the REST credentials and
// that the number still belongs to the account.
func (c *Client) verify(ctx context.Context) error {
	key := accountKey(c.tokenRest.creds.AccountSID, c.tokenRest.creds.User+":"+c.tokenRest.creds.Pass)
	acct, _, err := c.conn.accounts.get(key, c.conn.now, sharedFetchTTL, func() (*openapi.ApiV2010Account, error) {
		token := *c.tokenRest
		token.onUnreachable = nil
		return token.fetchAccount(ctx)
	})
	if err != nil {
		return err
	}
	if st := deref(acct.Status); st != "" && st != "active" {
		err := bridgev2.NewError(fmt.Sprintf("The Twilio account is %s.", st), nil)
		c.setState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateBadCredentials, Error: "twilio-account-" + st, Message: err.Message})
		return err
	}
	if c.whatsappOnly {
		return nil
	}
	c.checkGroupDeliveries(ctx)
	smsURL, err := c.numberWebhook(ctx)
	if errors.Is(err, errNumberGone) {
		msg := formatNumber(c.own) + " is no longer a number of this Twilio account; log in again."
		c.setState(ctx, bridgev2.BridgeState{StateEvent: bridgev2.StateUnknownError, Error: "twilio-number-gone", Message: msg})
		return bridgev2.NewError(msg, err)
	} else if err != nil {
		return err
	}
	if c.webhookURL != "" && smsURL != c.webhookURL {
		c.log.Warn().Str("sms_url", smsURL).
			Msg("The number's incoming webhook no longer points at this bridge; new texts arrive only through catch-up at the next connect")
	}
	return nil
}

// errNumberGone is numberWebhook's answer for a number the account no
// longer has.
var errNumberGone = errors.New("the number is no longer on the account")

// numberWebhook reads the login's number's SMS webhook from the account's
// list of numbers, which all its logins share for a minute: a bridge with
// thousands of numbers of one account lists them in a few pages instead of
// fetching each. A number missing from an incomplete list is fetched.
func (c *Client) numberWebhook(ctx context.Context) (string, error) {
	creds := c.bgRest.creds
	nums, _, err := c.conn.numbers.get(accountKey(creds.AccountSID, creds.User+":"+creds.Pass), c.conn.now, sharedFetchTTL,
		func() (accountNumbers, error) { return c.bgRest.listNumberWebhooks(ctx) })
	if err != nil {
		return "", err
	}
	if u, ok := nums.smsURL[c.numberSID]; ok {
		return u, nil
	} else if nums.complete {
		return "", errNumberGone
	}
	num, err := c.bgRest.fetchNumber(ctx, c.numberSID)
	if re := asRestError(err); re != nil && re.Status == http.StatusNotFound {
		return "", fmt.Errorf("%w: %w", errNumberGone, err)
	} else if err != nil {
		return "", err
	}
	return deref(num.SmsUrl), nil
}

// LogoutRemote removes the incoming webhook, but only if it is still the
// one the bridge set: someone may have pointed the number elsewhere since.
func (c *Client) LogoutRemote(ctx context.Context) {
	if c.webhookURL == "" {
		return
	}
	c.removeConversationsWebhook(ctx)
	num, err := c.bgRest.fetchNumber(ctx, c.numberSID)
	if err != nil {
		c.log.Warn().Err(err).Msg("Could not read the number's webhook at logout; leaving it")
		return
	}
	if deref(num.SmsUrl) != c.webhookURL {
		c.log.Info().Msg("The number's webhook was changed by someone else; leaving it")
		return
	}
	if err := c.bgRest.setSMSURL(ctx, c.numberSID, ""); err != nil {
		c.log.Warn().Err(err).Msg("Could not remove the number's webhook at logout")
		return
	}
	c.log.Info().Msg("Removed the number's incoming webhook")
}

// removeConversationsWebhook clears the account's Conversations webhook if
// it still points at this login: group texts then stop coming to a login
// that is gone.
func (c *Client) removeConversationsWebhook(ctx context.Context) {
	ours := c.conn.bridge.NetworkPublicURL("/" + string(c.loginID) + "/conversations")
	current, err := c.bgRest.conversationsWebhookURL(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("Could not read the Conversations webhook at logout; leaving it")
		return
	}
	if current != ours {
		return
	}
	if err := c.bgRest.setConversationsWebhook(ctx, ""); err != nil {
		c.log.Warn().Err(err).Msg("Could not remove the Conversations webhook at logout")
		return
	}
	c.log.Info().Msg("Removed the account's Conversations webhook")
}

// ResolveIdentifier turns a typed phone number into the DM with it; with
// the "whatsapp:" prefix, into the WhatsApp chat with it.
func (c *Client) ResolveIdentifier(ctx context.Context, identifier string) (*bridgev2.ResolvedIdentifier, error) {
	typed, whatsapp := strings.CutPrefix(strings.TrimSpace(identifier), whatsappPrefix)
	// A login without an SMS number chats over WhatsApp only.
	whatsapp = whatsapp || c.whatsappOnly
	e164, err := parseUserNumber(typed, c.conn.cfg.DefaultRegion, true)
	if err != nil {
		return nil, bridgev2.NewError(fmt.Sprintf("%q is not a valid phone number; include the country code (like +1 415 555 0100) unless it is a %s number.",
			identifier, c.conn.cfg.DefaultRegion), err)
	}
	k := contact{addr: e164, whatsapp: whatsapp}
	if whatsapp && c.whatsapp == "" {
		return nil, bridgev2.NewError("This login has no WhatsApp sender; log in again and pick a number that has one.", nil)
	}
	if e164 == c.own || (whatsapp && e164 == c.whatsapp) {
		return nil, bridgev2.NewError("That is this login's own number; a number cannot text itself.", nil)
	}
	name := c.conn.cfg.displayName(e164)
	var notice string
	if c.conn.cfg.CallerNameLookup {
		// The user waits for start-chat anyway, so a number not looked up
		// yet is looked up now; a failure only costs the name and warning.
		if res, err := c.currentLookup(ctx, e164); err != nil {
			c.log.Warn().Err(err).Str("ghost", idFromAddr(e164)).Msg("Could not read or store the Lookup answer for start-chat")
		} else {
			name = c.conn.contactName(e164, res)
			if !whatsapp {
				notice = landlineWarning(e164, res)
			}
		}
	}
	uid := k.userID()
	info := c.chatInfo(ctx, k)
	if *info.Name == channelName(c.conn.cfg.displayName(e164), k) {
		// The ghost has no better name yet than the caller name just
		// looked up.
		chatName := channelName(name, k)
		info.Name = &chatName
	}
	if k.whatsapp {
		topic, err := c.windowTopicNow(ctx, k)
		if err != nil {
			return nil, err
		}
		info.Topic = &topic
	}
	return &bridgev2.ResolvedIdentifier{
		UserID:   uid,
		UserInfo: &bridgev2.UserInfo{Name: &name, Identifiers: []string{"tel:" + e164}},
		Chat:     c.portalKey(k),
		ChatInfo: info,
		Notice:   notice,
	}, nil
}

// GetChatInfo describes a DM portal (the other number and its name) or a
// group portal (its phones).
func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	if isGroupPortal(portal.ID) {
		return c.groupChatInfo(ctx, string(portal.ID))
	}
	k, err := contactFromPortalID(portal.ID)
	if err != nil {
		return nil, fmt.Errorf("portal %s is not a sender's chat", portal.ID)
	}
	return c.chatInfo(ctx, k), nil
}

// GetUserInfo names a contact after its stored Lookup caller name, if
// network.caller_name_lookup is on and there is one, else after
// network.displayname_template. A missing or due Lookup answer is fetched
// in the background, which renames the ghost when it comes.
func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	addr, kind, err := addrFromID(string(ghost.ID))
	if err != nil {
		return nil, fmt.Errorf("ghost %s is not a sender", ghost.ID)
	}
	name := c.conn.cfg.displayName(addr)
	if c.conn.cfg.CallerNameLookup && kind == senderPhone {
		if res, err := c.conn.cachedLookup(ctx, addr); err != nil {
			c.log.Warn().Err(err).Str("ghost", string(ghost.ID)).Msg("Could not read the stored Lookup answer; naming the contact after the number")
		} else {
			name = c.conn.contactName(addr, res)
		}
		c.refreshContact(contact{addr: addr, kind: kind})
	}
	info := &bridgev2.UserInfo{Name: &name}
	if kind == senderPhone {
		info.Identifiers = []string{"tel:" + addr}
	}
	return info, nil
}

// portalKey is the DM portal with a contact, as seen by this login.
func (c *Client) portalKey(k contact) networkid.PortalKey {
	return networkid.PortalKey{ID: k.portalID(), Receiver: c.loginID}
}

// chatInfo describes the DM with a contact. The person is one ghost on both
// channels; only the rooms differ.
func (c *Client) chatInfo(ctx context.Context, k contact) *bridgev2.ChatInfo {
	name := c.chatName(ctx, k)
	info := &bridgev2.ChatInfo{IsDM: true, OtherUser: k.userID(), Name: &name}
	// The room says once, in its topic, why replies fail here.
	if why := replyRefusal(k.addr, k.kind); why != "" {
		info.Topic = &why
	}
	return info
}

// GetContacts lists the numbers this login has a chat with (it texted
// them, or they texted it), sorted, each named as its ghost is.
func (c *Client) GetContacts(ctx context.Context) ([]*bridgev2.ResolvedIdentifier, error) {
	db := c.login.Bridge.DB
	portals, err := db.Portals.GetAllForReceiver(ctx, c.loginID)
	if err != nil {
		return nil, fmt.Errorf("list chats: %w", err)
	}
	var out []*bridgev2.ResolvedIdentifier
	for _, p := range portals {
		e164, err := e164FromID(string(p.ID))
		if err != nil || p.MXID == "" {
			continue // a group, or a chat never opened
		}
		uid := userIDFromAddr(e164)
		name := c.conn.cfg.displayName(e164)
		if g, err := db.Ghosts.Get(ctx, uid); err == nil && g.NameSet && g.Name != "" {
			name = g.Name
		}
		out = append(out, &bridgev2.ResolvedIdentifier{
			UserID:   uid,
			UserInfo: &bridgev2.UserInfo{Name: &name, Identifiers: []string{"tel:" + e164}},
			Chat:     p.PortalKey,
		})
	}
	slices.SortFunc(out, func(a, b *bridgev2.ResolvedIdentifier) int {
		return strings.Compare(string(a.UserID), string(b.UserID))
	})
	return out, nil
}
