package bridgev2

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"maunium.net/go/mautrix/id"
)

// Double puppeting: the user's own messages sent outside Matrix (IsFromMe
// events, live or backfilled) are sent as the user's own Matrix account
// rather than a ghost. Users of a homeserver with a double_puppet.secrets
// entry are double-puppeted automatically (the appservice method); others
// give the bridge an access token with login-matrix. The events go through
// the inbound journal like every other, and carry DoublePuppetSourceKey so
// that the bridge never bridges them back out.

// DoublePuppetSourceKey marks the content of events the bridge sent as a
// user's double puppet; its value is the bridge's appservice ID.
const DoublePuppetSourceKey = "fi.mau.double_puppet_source"

// DoublePuppeter is implemented by Matrix sides that can act as real
// Matrix users. Without it, the user's own messages from the network come
// from the ghost of their remote ID.
type DoublePuppeter interface {
	// SetDoublePuppet makes every call as userID use token at hsURL: the
	// user's own access token, or, with appservice set, an appservice's
	// token asserting the user. An empty token stops acting as the user.
	// Events sent this way carry DoublePuppetSourceKey.
	SetDoublePuppet(userID id.UserID, hsURL, token string, appservice bool) error
	// TokenOwner returns whose access token token is at hsURL.
	TokenOwner(ctx context.Context, hsURL, token string) (id.UserID, error)
}

// storedPuppet is a login-matrix token, kept in the bridge_kv table.
type storedPuppet struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func doublePuppetKey(userID id.UserID) string { return "double_puppet:" + string(userID) }

// doublePuppetState is the part of a User about double puppeting.
type doublePuppetState struct {
	// puppeted says the bridge can act as the user.
	puppeted atomic.Bool
}

// IsDoublePuppeted reports whether the user's own messages from the
// network appear as their Matrix account.
func (u *User) IsDoublePuppeted() bool { return u.dp.puppeted.Load() }

// loadDoublePuppet sets up the user's double puppet from a stored
// login-matrix token, or else from the appservice secret of their server.
func (u *User) loadDoublePuppet(ctx context.Context) error {
	b := u.Bridge
	dp, ok := b.Matrix.(DoublePuppeter)
	if !ok {
		return nil
	}
	raw, err := b.DB.KV.Get(ctx, doublePuppetKey(u.MXID))
	if err != nil {
		return fmt.Errorf("load double puppet: %w", err)
	}
	if raw != "" {
		var stored storedPuppet
		if err := json.Unmarshal([]byte(raw), &stored); err != nil {
			return fmt.Errorf("read double puppet: %w", err)
		}
		if err := dp.SetDoublePuppet(u.MXID, stored.URL, stored.Token, false); err != nil {
			return err
		}
		u.dp.puppeted.Store(true)
		return nil
	}
	_, server, _ := u.MXID.Parse()
	token, hsURL := b.Config.DoublePuppetASToken(server), b.Config.DoublePuppetURL(server)
	if token == "" || hsURL == "" {
		u.dp.puppeted.Store(false)
		return dp.SetDoublePuppet(u.MXID, "", "", false)
	}
	if err := dp.SetDoublePuppet(u.MXID, hsURL, token, true); err != nil {
		return err
	}
	u.dp.puppeted.Store(true)
	return nil
}

// LoginMatrix double-puppets the user with an access token of their Matrix
// account, checked with their homeserver first.
func (u *User) LoginMatrix(ctx context.Context, token string) error {
	b := u.Bridge
	dp, ok := b.Matrix.(DoublePuppeter)
	if !ok {
		return UnsupportedError("This bridge cannot act as Matrix users.")
	}
	_, server, _ := u.MXID.Parse()
	hsURL := b.Config.DoublePuppetURL(server)
	if hsURL == "" {
		return NewError(fmt.Sprintf("The bridge does not know the address of %s: ask the bridge admin to add it to double_puppet.servers.", server), nil)
	}
	owner, err := dp.TokenOwner(ctx, hsURL, token)
	if err != nil {
		return NewError("Your homeserver did not accept that access token.", err)
	}
	if owner != u.MXID {
		return NewError(fmt.Sprintf("That access token belongs to %s, not to you.", owner), nil)
	}
	raw, err := json.Marshal(storedPuppet{URL: hsURL, Token: token})
	if err != nil {
		return err
	}
	if err := b.DB.KV.Set(ctx, doublePuppetKey(u.MXID), string(raw)); err != nil {
		return fmt.Errorf("store double puppet: %w", err)
	}
	if err := dp.SetDoublePuppet(u.MXID, hsURL, token, false); err != nil {
		return err
	}
	u.dp.puppeted.Store(true)
	u.Log.Info().Msg("Double puppeting enabled with the user's access token")
	return nil
}

// LogoutMatrix forgets the user's login-matrix token. Users of a server
// with an appservice secret stay double-puppeted through it.
func (u *User) LogoutMatrix(ctx context.Context) error {
	if err := u.Bridge.DB.KV.Set(ctx, doublePuppetKey(u.MXID), ""); err != nil {
		return fmt.Errorf("forget double puppet: %w", err)
	}
	return u.loadDoublePuppet(ctx)
}
