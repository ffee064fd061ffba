package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// Group portals are keyed by the Conversation's SID ("CH" and 32 hex
// digits) and DM portals by the remote number's digits, so the two kinds
// never share a portal: a group text cannot land in a DM, nor a DM in a
// group.

// maxGroupParticipants is Twilio's limit for a group MMS Conversation,
// the login's number included.
const maxGroupParticipants = 10

var (
	_ bridgev2.GroupCreator      = (*Client)(nil)
	_ bridgev2.MembershipHandler = (*Client)(nil)
)

// isGroupPortal reports whether a portal ID is a group's.
func isGroupPortal(id networkid.PortalID) bool {
	return conversationSIDPattern.MatchString(string(id))
}

// groupKey is the portal of a group, as seen by this login.
func (c *Client) groupKey(convSID string) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(convSID), Receiver: c.loginID}
}

// groupInfo describes a group whose phones are members (E.164).
func (c *Client) groupInfo(name string, members []string) *bridgev2.ChatInfo {
	ids := make([]networkid.UserID, 0, len(members))
	names := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, userIDFromAddr(m))
		names = append(names, c.conn.cfg.displayName(m))
	}
	if name == "" {
		name = strings.Join(names, ", ")
	}
	return &bridgev2.ChatInfo{Name: &name, Members: ids}
}

// groupPhones are the phones of a group (not the bridge's own identity),
// and whether the login's number is the group's projected address.
func (c *Client) groupPhones(parts []groupParticipant) (phones []string, ours bool) {
	for _, p := range parts {
		switch {
		case p.Projected == c.own:
			ours = true
		case p.Address != "" && p.Address != c.own:
			if e164, err := parseTwilioNumber(p.Address); err == nil {
				phones = append(phones, e164)
			}
		}
	}
	return phones, ours
}

// groupNumbers parses and checks the numbers a user named for a group
// against Twilio's group MMS rules, so that the user reads why before
// anything is created.
func (c *Client) groupNumbers(typed []string) ([]string, error) {
	var phones []string
	for _, t := range typed {
		e164, err := parseUserNumber(t, c.conn.cfg.DefaultRegion, true)
		if err != nil {
			return nil, bridgev2.NewError(fmt.Sprintf("%q is not a valid phone number; include the country code (like +1 415 555 0100) unless it is a %s number.",
				t, c.conn.cfg.DefaultRegion), err)
		}
		if e164 == c.own {
			continue
		}
		if !strings.HasPrefix(e164, "+1") {
			return nil, bridgev2.NewError(fmt.Sprintf("Group texts work only between US and Canadian numbers, and %s is not one.", formatNumber(e164)), nil)
		}
		if !slices.Contains(phones, e164) {
			phones = append(phones, e164)
		}
	}
	switch {
	case !strings.HasPrefix(c.own, "+1"):
		return nil, bridgev2.NewError(fmt.Sprintf("Group texts need a US or Canadian number, and this login's number %s is not one.", formatNumber(c.own)), nil)
	case len(phones) < 2:
		return nil, bridgev2.NewError("A group text needs at least two other numbers; to text one number, start a one-to-one chat.", nil)
	case len(phones)+1 > maxGroupParticipants:
		return nil, bridgev2.NewError(fmt.Sprintf("A group text can have at most %d people, this login's number included; you named %d other numbers.",
			maxGroupParticipants, len(phones)), nil)
	}
	return phones, nil
}

// CreateGroup creates a group MMS Conversation: the bridge as the login's
// number, then each phone. If Twilio refuses a participant, the
// half-made Conversation is deleted and the user reads Twilio's reason.
// If the login already has a group of exactly these phones, that group is
// handed back instead, and the core invites the user to its room.
func (c *Client) CreateGroup(ctx context.Context, params *bridgev2.GroupParams) (*bridgev2.CreatedGroup, error) {
	phones, err := c.groupNumbers(params.Participants)
	if err != nil {
		return nil, err
	}
	if sid, err := c.existingGroup(ctx, phones); err != nil {
		return nil, err
	} else if sid != "" {
		c.log.Info().Str("conversation_sid", sid).Msg("Reusing the group of the same phones")
		return &bridgev2.CreatedGroup{Chat: c.groupKey(sid), ChatInfo: c.groupInfo(params.Name, phones)}, nil
	}
	conv, err := c.rest.createConversation(ctx, params.Name)
	if err != nil {
		return nil, err
	}
	sid := deref(conv.Sid)
	if !conversationSIDPattern.MatchString(sid) {
		return nil, bridgev2.NewError("Twilio created the group without a valid Conversation SID.", nil)
	}
	err = c.rest.addProjected(ctx, sid, c.own, c.own)
	for _, p := range phones {
		if err != nil {
			break
		}
		if err = c.rest.addPhone(ctx, sid, p); err != nil {
			err = bridgev2.NewError(fmt.Sprintf("Could not add %s to the group: %s", formatNumber(p), bridgev2.HumanMessage(err)), err)
		}
	}
	if err != nil {
		if derr := c.rest.deleteConversation(context.WithoutCancel(ctx), sid); derr != nil {
			c.log.Warn().Err(derr).Str("conversation_sid", sid).Msg("Could not delete a group Twilio refused a participant of")
		}
		return nil, err
	}
	c.log.Info().Str("conversation_sid", sid).Int("phones", len(phones)).Msg("Created a group MMS conversation")
	return &bridgev2.CreatedGroup{Chat: c.groupKey(sid), ChatInfo: c.groupInfo(params.Name, phones)}, nil
}

// HandleMatrixMembership adds a phone to a group or removes it. A phone
// already in (or already gone) is success, as the core may repeat a
// change after a crash.
func (c *Client) HandleMatrixMembership(ctx context.Context, mm *bridgev2.MatrixMembership) error {
	sid := string(mm.Portal.ID)
	if !isGroupPortal(mm.Portal.ID) {
		return bridgev2.NewError("This chat is not a group text.", nil)
	}
	target, err := e164FromID(string(mm.Target))
	if err != nil {
		return bridgev2.NewError("Only phone numbers can be in a group text.", err)
	}
	parts, err := c.rest.listParticipants(ctx, sid)
	if err != nil {
		return err
	}
	idx := slices.IndexFunc(parts, func(p groupParticipant) bool { return p.Address == target })
	switch mm.Change {
	case bridgev2.MembershipAdd:
		if idx >= 0 {
			return nil
		}
		if !strings.HasPrefix(target, "+1") {
			return bridgev2.NewError(fmt.Sprintf("Group texts work only between US and Canadian numbers, and %s is not one.", formatNumber(target)), nil)
		}
		if len(parts)+1 > maxGroupParticipants {
			return bridgev2.NewError(fmt.Sprintf("A group text can have at most %d people, this login's number included, and this one is full.", maxGroupParticipants), nil)
		}
		err := c.rest.addPhone(ctx, sid, target)
		if re := asRestError(err); re != nil && re.Code == codeBindingExists {
			return nil
		}
		return err
	case bridgev2.MembershipRemove:
		if idx < 0 {
			return nil
		}
		err := c.rest.removeParticipant(ctx, sid, parts[idx].SID)
		if re := asRestError(err); re != nil && re.Status == 404 {
			return nil
		}
		return err
	}
	return fmt.Errorf("unknown membership change %q", mm.Change)
}

// groupChatInfo describes a group portal from its participants.
func (c *Client) groupChatInfo(ctx context.Context, sid string) (*bridgev2.ChatInfo, error) {
	parts, err := c.rest.listParticipants(ctx, sid)
	if err != nil {
		return nil, err
	}
	phones, ours := c.groupPhones(parts)
	if !ours {
		return nil, errors.New("the login's number is not the projected address of this conversation")
	}
	return c.groupInfo("", phones), nil
}

// existingGroup is the Conversation SID of this login's group portal
// whose phones are exactly phones (in any order), or "". A second
// Conversation of the same people would split their texts over two rooms,
// and the phones would see two threads. Only portals with a room count;
// each costs one participant listing, and only start-chat pays it.
func (c *Client) existingGroup(ctx context.Context, phones []string) (string, error) {
	portals, err := c.conn.bridge.DB.Portals.GetAllForReceiver(ctx, c.loginID)
	if err != nil {
		return "", bridgev2.RetriableError("Could not read this login's chats.", err)
	}
	want := slices.Sorted(slices.Values(phones))
	for _, p := range portals {
		if !isGroupPortal(p.ID) || p.MXID == "" {
			continue
		}
		parts, err := c.rest.listParticipants(ctx, string(p.ID))
		if re := asRestError(err); re != nil && re.Status == http.StatusNotFound {
			continue // deleted on Twilio's side
		} else if err != nil {
			return "", err
		}
		got, ours := c.groupPhones(parts)
		slices.Sort(got)
		if ours && slices.Equal(got, want) {
			return string(p.ID), nil
		}
	}
	return "", nil
}
