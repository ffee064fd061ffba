package twilio

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
	"maunium.net/go/mautrix/event"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
)

// A text to a group shows as delivered, by the bot's read receipt, once
// every phone has it; a phone it did not reach is named at once.
func TestAGroupTextIsDeliveredOnceEveryPhoneHasIt(t *testing.T) {
	e := newEnv(t, envOptions{configure: func(c *bridgeconfig.Config) { c.Bridge.DeliveryReceipts = true }})
	e.login()
	_, room := e.startGroup(theirNumber, theirNumber2)

	delivered := e.h.SendText(alice, room, "dinner at eight?")
	e.waitReceipt(room, e.h.Matrix.BotUserID(), delivered)

	e.sim.SetRecipient(theirNumber2, twiliosim.RecipientConfig{Behavior: twiliosim.Undeliverable, ErrorCode: 30003})
	lost := e.h.SendText(alice, room, "or nine?")
	st := e.h.WaitForStatus(room, lost, event.MessageStatusFail)
	if want := "Not delivered to " + formatNumber(theirNumber2) + "."; !strings.HasPrefix(st.Message, want) {
		t.Fatalf("the failure says %q, want it to start with %q", st.Message, want)
	}
	e.h.WaitForText(room, e.h.Matrix.BotUserID(), formatNumber(theirNumber2))
}

func TestDeliveredToAllReadsTheMessagesSummary(t *testing.T) {
	summary := func(delivered, read string) *conversations.ConversationsV1ConversationMessage {
		var d any = map[string]any{"total": 3, "delivered": delivered, "read": read}
		return &conversations.ConversationsV1ConversationMessage{Delivery: &d}
	}
	for _, tc := range []struct {
		m     *conversations.ConversationsV1ConversationMessage
		state database.Delivery
		want  bool
	}{
		{summary("all", "none"), database.DeliveryDelivered, true},
		{summary("some", "none"), database.DeliveryDelivered, false},
		{summary("all", "some"), database.DeliveryRead, false},
		{summary("all", "all"), database.DeliveryRead, true},
		{&conversations.ConversationsV1ConversationMessage{}, database.DeliveryDelivered, false},
	} {
		if got := deliveredToAll(tc.m, tc.state); got != tc.want {
			t.Errorf("deliveredToAll(%v, %s) = %v, want %v", tc.m.Delivery, tc.state, got, tc.want)
		}
	}
}

// A Conversations webhook set by an older bridge, which did not ask for
// delivery reports, is brought up to date at the next start.
func TestAnOlderConversationsWebhookGetsTheDeliveryReports(t *testing.T) {
	e := newEnv(t, envOptions{configure: func(c *bridgeconfig.Config) { c.Bridge.DeliveryReceipts = true }})
	ul := e.login()
	rest := twClient(ul).bgRest
	hook, err := rest.conversationsWebhook(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	old := []string{"onMessageAdded", "onParticipantAdded", "onParticipantRemoved"}
	if err := rest.conv(e.ctx(), "set an old webhook", idempotent, func(api *conversations.ApiService) error {
		_, err := api.UpdateConfigurationWebhook((&conversations.UpdateConfigurationWebhookParams{}).
			SetPostWebhookUrl(hook.url).SetMethod("POST").SetFilters(old).SetTarget("webhook"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.h.Restart()
	ul = e.h.Bridge().GetLogin(ul.ID)
	e.waitCaughtUp(ul, 1)
	if now, err := twClient(ul).bgRest.conversationsWebhook(e.ctx()); err != nil || !slices.Contains(now.filters, eventDeliveryUpdated) || now.url != hook.url {
		t.Fatalf("after the restart the webhook is %+v (%v), want %s with delivery reports", now, err, hook.url)
	}
	_, room := e.startGroup(theirNumber, theirNumber2)
	evtID := e.h.SendText(alice, room, "hello all")
	e.waitReceipt(room, e.h.Matrix.BotUserID(), evtID)
}

// heldSends holds the answer to each group message the bridge creates
// until Twilio has reported its delivery to every phone, as a slow network
// would: the reports then reach the bridge before it learns the send went
// through.
type heldSends struct {
	base http.RoundTripper
	acct atomic.Pointer[twiliosim.Account]
}

func (h *heldSends) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if acct := h.acct.Load(); acct != nil && err == nil && req.Method == http.MethodPost &&
		strings.HasPrefix(req.URL.Path, "/v1/Conversations/") && strings.HasSuffix(req.URL.Path, "/Messages") {
		_, _ = acct.WaitConversations(req.Context(), func(cs []twiliosim.Conversation) bool {
			for _, c := range cs {
				for _, m := range c.Messages {
					if m.Author == ourNumber && !m.Done {
						return false
					}
				}
			}
			return true
		})
	}
	return resp, err
}

// A delivery report that overtakes the send's own answer is kept until
// the send is recorded, not dropped as a report on a message the bridge
// never sent.
func TestAGroupDeliveryReportThatOvertakesItsSendIsKept(t *testing.T) {
	held := &heldSends{}
	e := newEnv(t, envOptions{
		configure: func(c *bridgeconfig.Config) { c.Bridge.DeliveryReceipts = true },
		tweak: func(c *Connector) {
			held.base = c.transport
			c.transport = held
		},
	})
	held.acct.Store(e.acct)
	e.login()
	_, room := e.startGroup(theirNumber, theirNumber2)
	evtID := e.h.SendText(alice, room, "slow network")
	e.waitReceipt(room, e.h.Matrix.BotUserID(), evtID)
}
