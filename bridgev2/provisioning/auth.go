package provisioning

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
)

// authenticate finds the user a request acts for and checks that they may
// use the bridge.
func (a *API) authenticate(r *http.Request) (*bridgev2.User, *apiError) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, newError(http.StatusUnauthorized, errcodeMissingToken, "Missing auth token.")
	}
	userID := id.UserID(r.URL.Query().Get("user_id"))
	if a.isSharedSecret(token) {
		if userID == "" {
			return nil, newError(http.StatusBadRequest, errcodeMissingParam, "The user_id query parameter is required with the shared secret.")
		}
	} else {
		owner, err := a.tokens.check(r.Context(), token)
		switch {
		case errors.Is(err, errInvalidToken):
			a.log.Warn().Str("remote_addr", r.RemoteAddr).Msg("Provisioning request with an invalid auth token")
			return nil, newError(http.StatusUnauthorized, errcodeUnknownToken, "Invalid auth token.")
		case err != nil:
			return nil, internalError("Could not check the access token with the homeserver.", err)
		case userID != "" && userID != owner:
			a.log.Warn().Str("remote_addr", r.RemoteAddr).Stringer("user_id", userID).Stringer("token_owner", owner).
				Msg("Provisioning request with another user's access token")
			return nil, newError(http.StatusUnauthorized, errcodeUnknownToken, "Invalid auth token: it does not belong to user_id.")
		}
		userID = owner
	}
	if _, _, err := userID.Parse(); err != nil {
		return nil, newError(http.StatusBadRequest, errcodeInvalidParam, "user_id is not a valid Matrix user ID.")
	}
	b := a.bridge
	if _, ghost := b.Matrix.ParseGhostUserID(userID); ghost || userID == b.Matrix.BotUserID() {
		return nil, newError(http.StatusForbidden, errcodeForbidden, "The bridge's own users cannot use the provisioning API.")
	}
	user, err := b.GetUser(r.Context(), userID)
	if err != nil {
		return nil, internalError("Could not load the user.", err)
	}
	if user.Level < bridgeconfig.LevelUser {
		return nil, newError(http.StatusForbidden, errcodeForbidden, "You do not have permission to log in to this bridge.")
	}
	return user, nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// isSharedSecret compares in constant time. Both sides are hashed first so
// that not even the secret's length leaks through timing.
func (a *API) isSharedSecret(token string) bool {
	if a.secret == nil {
		return false
	}
	want := sha256.Sum256(a.secret)
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// errInvalidToken means the homeserver does not know the access token.
var errInvalidToken = errors.New("the homeserver rejected the access token")

const (
	// validTokenTTL is how long a homeserver's word that a token is valid
	// is trusted; a logged-out token works at most this much longer here.
	validTokenTTL = 5 * time.Minute
	// invalidTokenTTL spares the homeserver repeated checks of a bad token.
	invalidTokenTTL = 30 * time.Second
	// maxCachedTokens bounds the cache against floods of made-up tokens.
	maxCachedTokens = 1024
	// whoamiTimeout bounds one check with the homeserver.
	whoamiTimeout = 10 * time.Second
)

// tokenChecker checks Matrix access tokens with the homeserver's
// /account/whoami and caches the answers briefly. Cache keys are hashes,
// so the cache never holds a usable token.
type tokenChecker struct {
	whoamiURL string
	client    *http.Client

	mu    sync.Mutex
	cache map[[sha256.Size]byte]tokenEntry
}

type tokenEntry struct {
	owner   id.UserID // empty for an invalid token
	expires time.Time
}

func newTokenChecker(homeserver string) *tokenChecker {
	whoami, err := url.JoinPath(homeserver, "/_matrix/client/v3/account/whoami")
	if err != nil {
		// The config was validated to be a URL; keep going and let every
		// check fail with this error rather than refuse to start.
		whoami = ""
	}
	return &tokenChecker{
		whoamiURL: whoami,
		client:    &http.Client{Timeout: whoamiTimeout},
		cache:     make(map[[sha256.Size]byte]tokenEntry),
	}
}

// check returns the owner of a token, errInvalidToken, or an error when the
// homeserver could not answer.
func (c *tokenChecker) check(ctx context.Context, token string) (id.UserID, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	c.mu.Lock()
	entry, ok := c.cache[key]
	c.mu.Unlock()
	if ok && now.Before(entry.expires) {
		if entry.owner == "" {
			return "", errInvalidToken
		}
		return entry.owner, nil
	}
	owner, err := c.whoami(ctx, token)
	switch {
	case errors.Is(err, errInvalidToken):
		c.remember(key, tokenEntry{expires: now.Add(invalidTokenTTL)})
	case err == nil:
		c.remember(key, tokenEntry{owner: owner, expires: now.Add(validTokenTTL)})
	}
	return owner, err
}

func (c *tokenChecker) remember(key [sha256.Size]byte, entry tokenEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= maxCachedTokens {
		now := time.Now()
		for k, e := range c.cache {
			if now.After(e.expires) {
				delete(c.cache, k)
			}
		}
		// Still full of live entries: forget one at random (map order)
		// rather than grow without bound.
		for k := range c.cache {
			if len(c.cache) < maxCachedTokens {
				break
			}
			delete(c.cache, k)
		}
	}
	c.cache[key] = entry
}

// whoami asks the homeserver who owns token.
func (c *tokenChecker) whoami(ctx context.Context, token string) (id.UserID, error) {
	if c.whoamiURL == "" {
		return "", errors.New("homeserver.address is not a valid URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.whoamiURL, nil)
	if err != nil {
		return "", fmt.Errorf("build whoami request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("ask the homeserver for whoami: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if err != nil {
		return "", fmt.Errorf("read whoami response: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", errInvalidToken
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("whoami answered HTTP %d", resp.StatusCode)
	}
	var parsed struct {
		UserID id.UserID `json:"user_id"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil {
		return "", fmt.Errorf("decode whoami response: %w", err)
	}
	if parsed.UserID == "" {
		return "", errors.New("whoami response has no user_id")
	}
	return parsed.UserID, nil
}
