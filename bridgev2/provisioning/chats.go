package provisioning

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/database"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// createChatTimeout bounds opening a chat, which creates a room and may
// import history.
const createChatTimeout = 2 * time.Minute

// resolvedIdentifier is provisioning.yaml's ResolvedIdentifier.
type resolvedIdentifier struct {
	ID          networkid.UserID    `json:"id"`
	Name        string              `json:"name,omitempty"`
	AvatarURL   id.ContentURIString `json:"avatar_url,omitempty"`
	Identifiers []string            `json:"identifiers,omitempty"`
	MXID        id.UserID           `json:"mxid,omitempty"`
	DMRoomID    id.RoomID           `json:"dm_room_mxid,omitempty"`
}

// identifierRefused is how a connector's refusal of an identifier (not a
// valid phone number, say) is answered: provisioning.yaml gives 404 for
// identifiers that resolve to nobody.
var identifierRefused = notFound("")

// requestLogin picks the login a request acts through: ?login_id= if
// given (it must be the user's own), else the user's oldest login.
func requestLogin(r *http.Request, user *bridgev2.User) (*bridgev2.UserLogin, *apiError) {
	if loginID := r.URL.Query().Get("login_id"); loginID != "" {
		if l := user.GetLogin(networkid.UserLoginID(loginID)); l != nil {
			return l, nil
		}
		return nil, notFound("Login not found.")
	}
	if logins := user.Logins(); len(logins) > 0 {
		return logins[0], nil
	}
	return nil, notFound("You are not logged in: log in first.")
}

func (a *API) getContacts(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	lister, ok := login.Client.(bridgev2.ContactLister)
	if !ok {
		return notSupported("This bridge does not support listing contacts.")
	}
	contacts, err := lister.GetContacts(r.Context())
	if err != nil {
		return connectorFailure(err, nil)
	}
	out := make([]*resolvedIdentifier, 0, len(contacts))
	for _, c := range contacts {
		if c != nil {
			out = append(out, a.describe(r.Context(), c, ""))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": out})
	return nil
}

func (a *API) getResolveIdentifier(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	resolved, err := login.ResolveIdentifier(r.Context(), r.PathValue("identifier"))
	if err != nil {
		return connectorFailure(err, identifierRefused)
	}
	if resolved == nil {
		return notFound("Identifier not found.")
	}
	writeJSON(w, http.StatusOK, a.describe(r.Context(), resolved, ""))
	return nil
}

// postCreateDM opens the chat with an identifier, creating its portal room
// if needed and inviting the user.
func (a *API) postCreateDM(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	// Room creation runs to the end even if the manager hangs up: stopping
	// halfway could leave a room the bridge does not know about.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), createChatTimeout)
	defer cancel()
	portal, resolved, err := a.bridge.CreateChat(ctx, login, r.PathValue("identifier"))
	if err != nil {
		return connectorFailure(err, identifierRefused)
	}
	resp := a.describe(ctx, resolved, portal.RoomID())
	zerolog.Ctx(ctx).Info().Str("login_id", string(login.ID)).Stringer("room_id", resp.DMRoomID).
		Msg("Opened a chat through the provisioning API")
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// getCapabilities answers what the network supports through a login, as
// the com.beeper.room_features state of its portal rooms says it.
func (a *API) getCapabilities(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	writeJSON(w, http.StatusOK, map[string]any{"login_id": login.ID, "room_features": login.RoomFeatures(r.Context(), nil)})
	return nil
}

// postSearchUsers searches the login's contacts: those whose name, ID or
// an identifier contains the query, after the user the query itself
// resolves to (a phone number typed in full), if any.
func (a *API) postSearchUsers(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	lister, ok := login.Client.(bridgev2.ContactLister)
	if !ok {
		return notSupported("This bridge does not support searching for users.")
	}
	var req struct {
		Query string `json:"query"`
	}
	if apiErr := decodeBody(r, &req); apiErr != nil {
		return apiErr
	}
	if strings.TrimSpace(req.Query) == "" {
		return newError(http.StatusBadRequest, errcodeMissingParam, "Give a query to search for.")
	}
	query := strings.TrimSpace(req.Query)
	results := []*resolvedIdentifier{}
	seen := map[networkid.UserID]bool{}
	if resolved, err := login.ResolveIdentifier(r.Context(), query); err == nil && resolved != nil && resolved.UserID != "" {
		results = append(results, a.describe(r.Context(), resolved, ""))
		seen[resolved.UserID] = true
	}
	contacts, err := lister.GetContacts(r.Context())
	if err != nil {
		return connectorFailure(err, nil)
	}
	for _, c := range contacts {
		if c == nil || seen[c.UserID] || !matchesQuery(c, query) {
			continue
		}
		seen[c.UserID] = true
		results = append(results, a.describe(r.Context(), c, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}

// matchesQuery reports whether a contact's ID, name or an identifier
// contains the query, ignoring case.
func matchesQuery(c *bridgev2.ResolvedIdentifier, query string) bool {
	q := strings.ToLower(query)
	fields := []string{string(c.UserID)}
	if c.UserInfo != nil {
		if c.UserInfo.Name != nil {
			fields = append(fields, *c.UserInfo.Name)
		}
		fields = append(fields, c.UserInfo.Identifiers...)
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// groupCreateParams is provisioning.yaml's GroupCreateParams, the fields
// a group can be started with here.
type groupCreateParams struct {
	Participants []string `json:"participants"`
	Name         *struct {
		Name string `json:"name"`
	} `json:"name"`
}

// groupRefused is how a connector's refusal of a group (a participant it
// cannot add, too many of them) is answered: the request named something
// the network does not take.
var groupRefused = newError(http.StatusBadRequest, errcodeInvalidParam, "")

// postCreateGroup starts a group chat with the participants and opens its
// portal room, inviting the user.
func (a *API) postCreateGroup(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	login, apiErr := requestLogin(r, user)
	if apiErr != nil {
		return apiErr
	}
	if _, ok := login.Client.(bridgev2.GroupCreator); !ok {
		return notSupported("This bridge does not support creating groups.")
	}
	var body groupCreateParams
	if apiErr := decodeBody(r, &body); apiErr != nil {
		return apiErr
	}
	if len(body.Participants) == 0 {
		return newError(http.StatusBadRequest, errcodeMissingParam, "Name the participants of the group.")
	}
	params := &bridgev2.GroupParams{Type: r.PathValue("type"), Participants: body.Participants}
	if body.Name != nil {
		params.Name = body.Name.Name
	}
	// As with create_dm, room creation runs to the end even if the
	// manager hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), createChatTimeout)
	defer cancel()
	portal, err := a.bridge.CreateGroup(ctx, login, params)
	if err != nil {
		return connectorFailure(err, groupRefused)
	}
	zerolog.Ctx(ctx).Info().Str("login_id", string(login.ID)).Stringer("room_id", portal.RoomID()).
		Msg("Started a group chat through the provisioning API")
	writeJSON(w, http.StatusOK, map[string]any{"id": portal.ID, "mxid": portal.RoomID()})
	return nil
}

// describe turns what the connector resolved into the API's shape, adding
// what the bridge knows: the ghost's Matrix ID and avatar, and the room of
// the chat if it has one (room, when the caller already knows it). It
// reads rows rather than loading portals and ghosts, so looking at
// contacts changes nothing.
func (a *API) describe(ctx context.Context, res *bridgev2.ResolvedIdentifier, room id.RoomID) *resolvedIdentifier {
	b := a.bridge
	out := &resolvedIdentifier{ID: res.UserID, DMRoomID: room}
	if res.UserInfo != nil {
		if res.UserInfo.Name != nil {
			out.Name = *res.UserInfo.Name
		}
		out.Identifiers = res.UserInfo.Identifiers
	}
	if res.UserID != "" {
		out.MXID = b.Matrix.GhostUserID(res.UserID)
		ghost, err := b.DB.Ghosts.Get(ctx, res.UserID)
		switch {
		case err == nil:
			if out.Name == "" {
				out.Name = ghost.Name
			}
			if ghost.AvatarSet {
				out.AvatarURL = ghost.AvatarMXC
			}
		case !errors.Is(err, database.ErrNotFound):
			zerolog.Ctx(ctx).Warn().Err(err).Str("remote_user_id", string(res.UserID)).Msg("Could not load contact's ghost")
		}
	}
	if out.DMRoomID == "" && res.Chat.ID != "" {
		portal, err := b.DB.Portals.Get(ctx, res.Chat)
		switch {
		case err == nil:
			out.DMRoomID = portal.MXID
		case !errors.Is(err, database.ErrNotFound):
			zerolog.Ctx(ctx).Warn().Err(err).Str("portal_key", res.Chat.String()).Msg("Could not load contact's chat")
		}
	}
	return out
}
