package provisioning

import (
	"context"
	"net/http"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

// whoamiResponse is provisioning.yaml's Whoami: what a manager shows about
// the bridge and the user.
type whoamiResponse struct {
	Network        bridgeName           `json:"network"`
	LoginFlows     []bridgev2.LoginFlow `json:"login_flows"`
	Homeserver     string               `json:"homeserver"`
	BridgeBot      id.UserID            `json:"bridge_bot"`
	CommandPrefix  string               `json:"command_prefix"`
	ManagementRoom id.RoomID            `json:"management_room,omitempty"`
	Logins         []whoamiLogin        `json:"logins"`
}

// bridgeName is provisioning.yaml's BridgeName.
type bridgeName struct {
	DisplayName string `json:"displayname"`
	NetworkURL  string `json:"network_url"`
	// NetworkIcon is an mxc:// URI; connectors do not declare one yet.
	NetworkIcon      id.ContentURIString `json:"network_icon"`
	NetworkID        string              `json:"network_id"`
	BeeperBridgeType string              `json:"beeper_bridge_type"`
}

// whoamiLogin is provisioning.yaml's WhoamiLogin.
type whoamiLogin struct {
	State   loginState            `json:"state"`
	ID      networkid.UserLoginID `json:"id"`
	Name    string                `json:"name"`
	Profile remoteProfile         `json:"profile"`
	// StateEvent and StateTS repeat State for managers written before it
	// existed; mautrix bridges still send them.
	StateEvent bridgev2.StateEvent `json:"state_event"`
	StateTS    int64               `json:"state_ts"`
}

// loginState is provisioning.yaml's BridgeState.
type loginState struct {
	StateEvent bridgev2.StateEvent `json:"state_event"`
	// Timestamp is in Unix seconds. provisioning.yaml says milliseconds,
	// but mautrix bridges send seconds (as in the bridge state pushes,
	// which Trestle sends in seconds too), and managers are written
	// against what bridges send.
	Timestamp int64  `json:"timestamp"`
	Error     string `json:"error,omitempty"`
	Message   string `json:"message,omitempty"`
}

// remoteProfile is provisioning.yaml's RemoteProfile. Connectors report no
// profile beyond the login's name yet, so it is always empty.
type remoteProfile struct{}

func (a *API) getWhoami(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	b := a.bridge
	info := b.Network.Info()
	resp := whoamiResponse{
		Network: bridgeName{
			DisplayName:      info.DisplayName,
			NetworkURL:       info.URL,
			NetworkID:        info.ID,
			BeeperBridgeType: "net.trestle." + info.ID,
		},
		LoginFlows:     loginFlows(b),
		Homeserver:     b.Matrix.ServerName(),
		BridgeBot:      b.Matrix.BotUserID(),
		CommandPrefix:  b.Config.Bridge.CommandPrefix,
		ManagementRoom: user.ManagementRoom(),
		Logins:         []whoamiLogin{},
	}
	for _, l := range user.Logins() {
		st := l.State()
		resp.Logins = append(resp.Logins, whoamiLogin{
			State: loginState{
				StateEvent: st.StateEvent,
				Timestamp:  st.Timestamp.Unix(),
				Error:      st.Error,
				Message:    st.Message,
			},
			ID:         l.ID,
			Name:       l.RemoteName,
			StateEvent: st.StateEvent,
			StateTS:    st.Timestamp.Unix(),
		})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// loginFlows never returns nil, so the JSON says [] rather than null.
func loginFlows(b *bridgev2.Bridge) []bridgev2.LoginFlow {
	flows := b.Network.LoginFlows()
	if flows == nil {
		flows = []bridgev2.LoginFlow{}
	}
	return flows
}

func (a *API) getLoginFlows(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"flows": loginFlows(a.bridge)})
	return nil
}

func (a *API) getLogins(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	ids := []networkid.UserLoginID{}
	for _, l := range user.Logins() {
		ids = append(ids, l.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"login_ids": ids})
	return nil
}

// postLogout logs out one of the user's logins, or all of them for the
// login ID "all".
func (a *API) postLogout(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError {
	loginID := networkid.UserLoginID(r.PathValue("loginID"))
	var logins []*bridgev2.UserLogin
	if loginID == "all" {
		logins = user.Logins()
	} else if l := user.GetLogin(loginID); l != nil {
		logins = []*bridgev2.UserLogin{l}
	} else {
		return notFound("Login not found.")
	}
	// Finish the logout even if the manager hangs up: stopping halfway
	// would leave the login's portals half unbridged.
	ctx := context.WithoutCancel(r.Context())
	for _, l := range logins {
		if err := l.Logout(ctx); err != nil {
			return connectorFailure(err, nil)
		}
		zerolog.Ctx(ctx).Info().Str("login_id", string(l.ID)).Msg("Logged out through the provisioning API")
	}
	writeJSON(w, http.StatusOK, emptyObject)
	return nil
}
