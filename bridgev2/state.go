package bridgev2

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// statePush is the body of a com.beeper.bridge_state push, the format bridge
// managers already understand.
type statePush struct {
	StateEvent StateEvent     `json:"state_event"`
	Timestamp  int64          `json:"timestamp"`
	TTL        int            `json:"ttl"`
	Source     string         `json:"source"`
	Error      string         `json:"error,omitempty"`
	Message    string         `json:"message,omitempty"`
	UserID     string         `json:"user_id,omitempty"`
	RemoteID   string         `json:"remote_id,omitempty"`
	RemoteName string         `json:"remote_name,omitempty"`
	Info       map[string]any `json:"info,omitempty"`
}

// pushState sends a login's state to homeserver.status_endpoint, if one is
// configured. It is best effort: a state push never blocks bridging.
func (b *Bridge) pushState(ctx context.Context, l *UserLogin, st BridgeState) {
	endpoint := b.Config.Homeserver.StatusEndpoint
	if endpoint == "" {
		return
	}
	body, err := json.Marshal(statePush{
		StateEvent: st.StateEvent, Timestamp: st.Timestamp.Unix(), TTL: 3600, Source: "bridge",
		Error: st.Error, Message: st.Message, UserID: string(l.UserMXID), RemoteID: string(l.ID), RemoteName: l.RemoteName,
	})
	if err != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			b.Log.Warn().Err(err).Msg("Bad homeserver.status_endpoint")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+b.Config.AppService.ASToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Log.Warn().Err(err).Msg("Could not push bridge state")
			return
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 300 {
			b.Log.Warn().Int("status", resp.StatusCode).Msg("Status endpoint refused the bridge state")
		}
	}()
}
