package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	lookups "github.com/twilio/twilio-go/rest/lookups/v2"
)

// Contact names and line types from Twilio Lookup v2
// (GET lookups.twilio.com/v2/PhoneNumbers/{number}), when the admin turns
// on network.caller_name_lookup. Each lookup is billed, so answers are kept
// in bridge_kv and a number is looked up at most once per
// network.lookup_refresh, whichever login saw it and however often the bridge
// restarts. Lookups run in the background (see lookupqueue.go): a text
// never waits for one.

// lookupFields are the Lookup packages asked for, in one request: the
// name for the ghost, the line type for start-chat's landline warning.
const lookupFields = "caller_name,line_type_intelligence"

// lineTypeLandline is Lookup's line type of fixed lines, which cannot
// receive texts in most cases. Fixed VoIP numbers often can, so only
// landlines are warned about.
const lineTypeLandline = "landline"

// lookupFailureRetry is how soon a failed lookup (an error, an invalid
// number, no coverage) may be tried again: sooner than a success, since
// the cause may pass, but not on every text, since each try is billed.
const lookupFailureRetry = 24 * time.Hour

// lookupResult is what Lookup said about a number, as stored in bridge_kv.
type lookupResult struct {
	// CallerName is the CNAM name; empty when Lookup has none.
	CallerName string `json:"caller_name,omitempty"`
	// LineType is line_type_intelligence.type ("mobile", "landline", ...).
	LineType string `json:"line_type,omitempty"`
	// Failed marks a lookup that gave no usable answer; it is kept for
	// lookupFailureRetry only.
	Failed bool `json:"failed,omitempty"`
	// At is when the lookup was made.
	At time.Time `json:"at"`
}

// fresh reports whether the result is young enough to be used without a
// new lookup.
func (r *lookupResult) fresh(now time.Time, refresh time.Duration) bool {
	return now.Before(r.due(refresh))
}

// due is when the number should be looked up again.
func (r *lookupResult) due(refresh time.Duration) time.Time {
	if r.Failed {
		return r.At.Add(min(refresh, lookupFailureRetry))
	}
	return r.At.Add(refresh)
}

// lookupKey is the bridge_kv key of a number's Lookup answer. Lookup
// describes the number, not an account, so the key is the number alone.
func lookupKey(e164 string) string { return "twilio:lookup:" + e164 }

// cachedLookup returns the stored Lookup answer for a number, or nil.
func (c *Connector) cachedLookup(ctx context.Context, e164 string) (*lookupResult, error) {
	v, err := c.bridge.DB.KV.Get(ctx, lookupKey(e164))
	if err != nil {
		return nil, fmt.Errorf("read the Lookup answer: %w", err)
	}
	if v == "" {
		return nil, nil
	}
	var res lookupResult
	if err := json.Unmarshal([]byte(v), &res); err != nil {
		// A value this code cannot read is as good as none: look again.
		return nil, nil
	}
	return &res, nil
}

// storeLookup stores a number's Lookup answer.
func (c *Connector) storeLookup(ctx context.Context, e164 string, res *lookupResult) error {
	v, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode the Lookup answer: %w", err)
	}
	if err := c.bridge.DB.KV.Set(ctx, lookupKey(e164), string(v)); err != nil {
		return fmt.Errorf("store the Lookup answer: %w", err)
	}
	return nil
}

// lookupNumber asks Lookup v2 for a number's caller name and line type.
func (r *restClient) lookupNumber(ctx context.Context, e164 string) (*lookups.LookupResponse, error) {
	var resp *lookups.LookupResponse
	err := r.call(ctx, "lookup number", idempotent, func(h *client.RequestHandler) error {
		var err error
		resp, err = lookups.NewApiService(h).FetchPhoneNumber(e164, (&lookups.FetchPhoneNumberParams{}).SetFields(lookupFields))
		return err
	})
	return resp, err
}

// lookup looks a number up through this login's account and stores the
// answer, a failure included, so that it is not tried again before it is
// due. It returns an error only when the bridge is stopping or the answer
// could not be stored.
func (c *Client) lookup(ctx context.Context, e164 string) (*lookupResult, error) {
	log := c.log.With().Str("ghost", idFromAddr(e164)).Logger()
	resp, err := c.bgRest.lookupNumber(ctx, e164)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res := &lookupResult{At: c.conn.now()}
	switch {
	case err != nil:
		res.Failed = true
		ev := log.Warn().Err(err)
		if re := asRestError(err); re != nil {
			ev = ev.Int("status", re.Status).Int("code", re.Code)
		}
		ev.Msg("Twilio Lookup failed; the contact keeps their number as name")
	case !resp.Valid:
		res.Failed = true
		reasons := make([]string, 0, len(resp.ValidationErrors))
		for _, v := range resp.ValidationErrors {
			reasons = append(reasons, string(v))
		}
		log.Info().Strs("validation_errors", reasons).Msg("Twilio Lookup says the number is not valid")
	default:
		if lt := resp.LineTypeIntelligence; lt.ErrorCode == 0 {
			res.LineType = lt.Type
		}
		if cn := resp.CallerName; cn.ErrorCode != 0 {
			res.Failed = true
			log.Info().Int("code", cn.ErrorCode).Msg("Twilio Lookup has no caller name for the number (60600: outside the US)")
		} else {
			res.CallerName = strings.TrimSpace(cn.CallerName)
		}
	}
	if err := c.conn.storeLookup(ctx, e164, res); err != nil {
		return nil, err
	}
	log.Debug().Bool("failed", res.Failed).Bool("named", res.CallerName != "").Str("line_type", res.LineType).Msg("Looked the number up")
	return res, nil
}

// currentLookup returns the number's Lookup answer, looking it up now if
// the stored one is missing or due. It is for start-chat, which a user
// waits for anyway; texts use refreshContact.
func (c *Client) currentLookup(ctx context.Context, e164 string) (*lookupResult, error) {
	res, err := c.conn.cachedLookup(ctx, e164)
	if err != nil {
		return nil, err
	}
	if res != nil && res.fresh(c.conn.now(), c.conn.cfg.LookupRefresh) {
		return res, nil
	}
	return c.lookup(ctx, e164)
}

// contactName is the network's name for a number: Lookup's caller name if
// there is one, else network.displayname_template. A name the user gave
// the contact wins over both; the core sees to that.
func (c *Connector) contactName(e164 string, res *lookupResult) string {
	if res != nil && res.CallerName != "" {
		return res.CallerName
	}
	return c.cfg.displayName(e164)
}

// landlineWarning is start-chat's warning about a number Lookup calls a
// landline, or "".
func landlineWarning(e164 string, res *lookupResult) string {
	if res == nil || res.LineType != lineTypeLandline {
		return ""
	}
	return formatNumber(e164) + " looks like a landline; texts to it will probably not arrive."
}
