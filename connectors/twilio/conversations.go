package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// Group MMS goes through Twilio's Conversations API: a group is a
// Conversation whose phones are participants with a messaging binding
// address, and whose one projected address is the login's number (the
// bridge takes part as an identity, the login's E.164 number, that texts
// from it).

// SID shapes of the Conversations API.
var (
	conversationSIDPattern = regexp.MustCompile(`^CH[0-9a-fA-F]{32}$`)
	chatServiceSIDPattern  = regexp.MustCompile(`^IS[0-9a-fA-F]{32}$`)
	mediaSIDPattern        = regexp.MustCompile(`^ME[0-9a-fA-F]{32}$`)
	convMessageSIDPattern  = regexp.MustCompile(`^IM[0-9a-fA-F]{32}$`)
	participantSIDPattern  = regexp.MustCompile(`^MB[0-9a-fA-F]{32}$`)
)

// conversationEvents are the Conversations webhooks the bridge asks for.
var conversationEvents = []string{"onMessageAdded", "onParticipantAdded", "onParticipantRemoved", eventDeliveryUpdated}

// mcsBase is Twilio's Media Content Service, where Conversations media
// lives; callTransport sends it to network.api_url like every Twilio host.
const mcsBase = "https://mcs.us1.twilio.com"

// groupParticipant is a participant of a Conversation as the bridge needs
// it.
type groupParticipant struct {
	SID       string
	Identity  string
	Address   string // a phone's E.164 number, "" for identities
	Projected string // the number an identity texts the group from
}

// participantOf reads a twilio-go participant.
func participantOf(p *conversations.ConversationsV1ConversationParticipant) groupParticipant {
	gp := groupParticipant{SID: deref(p.Sid), Identity: deref(p.Identity)}
	if p.MessagingBinding != nil {
		if b, ok := (*p.MessagingBinding).(map[string]any); ok {
			gp.Address, _ = b["address"].(string)
			gp.Projected, _ = b["projected_address"].(string)
		}
	}
	return gp
}

// conv runs fn with the Conversations API service; see call.
func (r *restClient) conv(ctx context.Context, op string, kind callKind, fn func(api *conversations.ApiService) error) error {
	return r.call(ctx, op, kind, func(h *client.RequestHandler) error { return fn(conversations.NewApiService(h)) })
}

// setConversationsWebhook points the account's Conversations webhook at u
// for the events the bridge handles.
func (r *restClient) setConversationsWebhook(ctx context.Context, u string) error {
	return r.conv(ctx, "update conversations webhook", idempotent, func(api *conversations.ApiService) error {
		_, err := api.UpdateConfigurationWebhook((&conversations.UpdateConfigurationWebhookParams{}).
			SetPostWebhookUrl(u).SetMethod(http.MethodPost).SetFilters(conversationEvents).SetTarget("webhook"))
		if err == nil {
			r.conn.groupHooks.forget()
		}
		return err
	})
}

// listConversations lists the account's Conversations, following paging
// up to maxListPages pages.
func (r *restClient) listConversations(ctx context.Context) ([]conversations.ConversationsV1Conversation, error) {
	var out []conversations.ConversationsV1Conversation
	token, page := "", ""
	for range maxListPages {
		var resp *conversations.ListConversationResponse
		err := r.conv(ctx, "list conversations", idempotent, func(api *conversations.ApiService) error {
			var err error
			resp, err = api.PageConversation((&conversations.ListConversationParams{}).SetPageSize(100), token, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Conversations...)
		var ok bool
		if token, page, ok = nextPage(resp.Meta.NextPageUrl); !ok {
			break
		}
	}
	return out, nil
}

// groupHook is the account's Conversations webhook: where it posts, and
// the events it posts.
type groupHook struct {
	url     string
	filters []string
}

// conversationsWebhook reads the account's Conversations webhook.
func (r *restClient) conversationsWebhook(ctx context.Context) (groupHook, error) {
	var out *conversations.ConversationsV1ConfigurationWebhook
	err := r.conv(ctx, "fetch conversations webhook", idempotent, func(api *conversations.ApiService) error {
		var err error
		out, err = api.FetchConfigurationWebhook()
		return err
	})
	if err != nil {
		return groupHook{}, err
	}
	hook := groupHook{url: deref(out.PostWebhookUrl)}
	if out.Filters != nil {
		hook.filters = *out.Filters
	}
	return hook, nil
}

// conversationsWebhookURL reads where the account's Conversations webhook
// posts events.
func (r *restClient) conversationsWebhookURL(ctx context.Context) (string, error) {
	hook, err := r.conversationsWebhook(ctx)
	return hook.url, err
}

// createConversation creates an empty Conversation.
func (r *restClient) createConversation(ctx context.Context, name string) (*conversations.ConversationsV1Conversation, error) {
	var out *conversations.ConversationsV1Conversation
	err := r.conv(ctx, "create conversation", creating, func(api *conversations.ApiService) error {
		params := &conversations.CreateConversationParams{}
		if name != "" {
			params.SetFriendlyName(name)
		}
		var err error
		out, err = api.CreateConversation(params)
		return err
	})
	return out, err
}

// fetchConversation reads a Conversation.
func (r *restClient) fetchConversation(ctx context.Context, sid string) (*conversations.ConversationsV1Conversation, error) {
	var out *conversations.ConversationsV1Conversation
	err := r.conv(ctx, "fetch conversation", idempotent, func(api *conversations.ApiService) error {
		var err error
		out, err = api.FetchConversation(sid)
		return err
	})
	return out, err
}

// deleteConversation deletes a Conversation.
func (r *restClient) deleteConversation(ctx context.Context, sid string) error {
	return r.conv(ctx, "delete conversation", idempotent, func(api *conversations.ApiService) error {
		return api.DeleteConversation(sid, nil)
	})
}

// addPhone adds a phone to a Conversation.
func (r *restClient) addPhone(ctx context.Context, convSID, e164 string) error {
	return r.conv(ctx, "add participant", idempotent, func(api *conversations.ApiService) error {
		_, err := api.CreateConversationParticipant(convSID, (&conversations.CreateConversationParticipantParams{}).
			SetMessagingBindingAddress(e164))
		return err
	})
}

// addProjected adds the bridge to a Conversation as identity, texting from
// the number projected.
func (r *restClient) addProjected(ctx context.Context, convSID, identity, projected string) error {
	return r.conv(ctx, "add participant", idempotent, func(api *conversations.ApiService) error {
		_, err := api.CreateConversationParticipant(convSID, (&conversations.CreateConversationParticipantParams{}).
			SetIdentity(identity).SetMessagingBindingProjectedAddress(projected))
		return err
	})
}

// removeParticipant removes a participant from a Conversation.
func (r *restClient) removeParticipant(ctx context.Context, convSID, sid string) error {
	return r.conv(ctx, "remove participant", idempotent, func(api *conversations.ApiService) error {
		return api.DeleteConversationParticipant(convSID, sid, nil)
	})
}

// listParticipants lists a Conversation's participants. A group has at
// most ten, so one page holds them all.
func (r *restClient) listParticipants(ctx context.Context, convSID string) ([]groupParticipant, error) {
	var resp *conversations.ListConversationParticipantResponse
	err := r.conv(ctx, "list participants", idempotent, func(api *conversations.ApiService) error {
		var err error
		resp, err = api.PageConversationParticipant(convSID, (&conversations.ListConversationParticipantParams{}).SetPageSize(50), "", "")
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]groupParticipant, 0, len(resp.Participants))
	for i := range resp.Participants {
		out = append(out, participantOf(&resp.Participants[i]))
	}
	return out, nil
}

// createConvMessage posts a message to a Conversation.
func (r *restClient) createConvMessage(ctx context.Context, convSID string, params *conversations.CreateConversationMessageParams) (*conversations.ConversationsV1ConversationMessage, error) {
	var out *conversations.ConversationsV1ConversationMessage
	err := r.conv(ctx, "create conversation message", creating, func(api *conversations.ApiService) error {
		var err error
		out, err = api.CreateConversationMessage(convSID, params)
		return err
	})
	return out, err
}

// recentConvMessages lists up to limit of a Conversation's newest
// messages, newest first.
func (r *restClient) recentConvMessages(ctx context.Context, convSID string, limit int) ([]conversations.ConversationsV1ConversationMessage, error) {
	var resp *conversations.ListConversationMessageResponse
	err := r.conv(ctx, "list conversation messages", idempotent, func(api *conversations.ApiService) error {
		var err error
		resp, err = api.PageConversationMessage(convSID, (&conversations.ListConversationMessageParams{}).SetOrder("desc").SetPageSize(limit), "", "")
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// uploadMedia stores an attachment in the Media Content Service of a
// Conversation Service and returns its SID, for a message's MediaSid.
// twilio-go has no call for it: the body is the raw file.
func (r *restClient) uploadMedia(ctx context.Context, chatServiceSID, contentType, filename string, data []byte) (string, error) {
	var sid string
	err := r.call(ctx, "upload media", idempotent, func(h *client.RequestHandler) error {
		u := mcsBase + "/v1/Services/" + chatServiceSID + "/Media"
		if filename != "" {
			u += "?" + url.Values{"Filename": {filename}}.Encode()
		}
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		req.SetBasicAuth(r.creds.User, r.creds.Pass)
		// call always hands over a *client.Client; its HTTP client carries
		// the attempt's transport (context, timeout, api_url).
		resp, err := h.Client.(*client.Client).HTTPClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode >= 300 {
			te := &client.TwilioRestError{Status: resp.StatusCode}
			if json.Unmarshal(body, te) != nil || te.Message == "" {
				te.Message = http.StatusText(resp.StatusCode)
			}
			return te
		}
		var out struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(body, &out); err != nil || !mediaSIDPattern.MatchString(out.SID) {
			return fmt.Errorf("upload answered without a media SID: %w", err)
		}
		sid = out.SID
		return nil
	})
	return sid, err
}

// mcsContentURL is where a Conversations attachment's bytes are: the
// Media Content Service redirects it to a short-lived CDN URL.
func mcsContentURL(chatServiceSID, mediaSID string) string {
	return mcsBase + "/v1/Services/" + chatServiceSID + "/Media/" + mediaSID + "/Content"
}

// convTime reads a Conversations timestamp, or zero.
func convTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
