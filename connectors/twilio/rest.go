package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// restCreds are what REST calls authenticate with: the account SID and auth
// token, or an API key SID and secret, for the account AccountSID.
type restCreds struct {
	AccountSID string
	User       string
	Pass       string
}

// restClient wraps twilio-go for one set of credentials: every call gets
// the caller's context, the configured timeout and API URL, and comes back
// classified (see do). It never retries: the core retries sends from its
// journal, and the connection loop retries its own calls.
type restClient struct {
	conn  *Connector
	creds restCreds
	log   zerolog.Logger
	// onBadCredentials is told when Twilio answers 401/20003, so the login
	// can go to BAD_CREDENTIALS. Nil during login.
	onBadCredentials func(ctx context.Context, err *restError)
	// onUnreachable is told when a call failed on 5xx or network failures,
	// so the login can report TRANSIENT_DISCONNECT and reconnect. Nil during
	// login.
	onUnreachable func(err *restError)
}

// restError is a failed REST call as the connector sees it. It is wrapped in
// a *bridgev2.Error that carries the sentence for the user.
type restError struct {
	Op      string
	Status  int // HTTP status, 0 if no answer
	Code    int // Twilio error code, 0 if none
	Message string
	// Network is set when no HTTP answer came back.
	Network bool
	// Ambiguous is set when a message create failed in a way that does not
	// tell whether Twilio created the message (a timeout, a 500): such a
	// send must be reconciled before it is repeated.
	Ambiguous bool
	Err       error
}

// Error describes the failure for logs (never the credentials).
func (e *restError) Error() string {
	switch {
	case e.Network:
		return fmt.Sprintf("twilio %s: %v", e.Op, e.Err)
	case e.Code != 0:
		return fmt.Sprintf("twilio %s: HTTP %d, error %d: %s", e.Op, e.Status, e.Code, e.Message)
	default:
		return fmt.Sprintf("twilio %s: HTTP %d: %v", e.Op, e.Status, e.Err)
	}
}

// metricCode is the failure's label in trestle_api_errors_total: Twilio's
// error code, or the HTTP status, or "network" when nothing answered.
func (e *restError) metricCode() string {
	switch {
	case e.Code != 0:
		return strconv.Itoa(e.Code)
	case e.Network || e.Status == 0:
		return "network"
	default:
		return "http_" + strconv.Itoa(e.Status)
	}
}

// Unwrap returns twilio-go's error.
func (e *restError) Unwrap() error { return e.Err }

// asRestError finds the restError in err, if any.
func asRestError(err error) *restError {
	var re *restError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// callTransport is the http.RoundTripper of one REST attempt. twilio-go
// builds requests without a context and hard-codes https://api.twilio.com,
// so this binds the attempt's context and rewrites Twilio hosts to
// network.api_url. It records the answer's status and Retry-After, which
// twilio-go's errors do not carry.
type callTransport struct {
	base    http.RoundTripper
	ctx     context.Context // nil: keep the request's own context
	apiBase *url.URL

	mu         sync.Mutex
	status     int
	retryAfter string
}

// RoundTrip sends one request of the attempt.
func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := t.ctx
	if ctx == nil {
		ctx = req.Context()
	}
	r := req.Clone(ctx)
	if t.apiBase != nil && isTwilioHost(r.URL.Hostname()) {
		r.URL.Scheme = t.apiBase.Scheme
		r.URL.Host = t.apiBase.Host
		r.URL.Path = t.apiBase.Path + r.URL.Path
		if r.URL.RawPath != "" {
			r.URL.RawPath = t.apiBase.EscapedPath() + r.URL.RawPath
		}
		r.Host = ""
	}
	resp, err := t.base.RoundTrip(r)
	if resp != nil {
		t.mu.Lock()
		t.status = resp.StatusCode
		t.retryAfter = resp.Header.Get("Retry-After")
		t.mu.Unlock()
	}
	return resp, err
}

func (t *callTransport) answer() (int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.retryAfter
}

// isTwilioHost reports whether host is twilio.com or one of its subdomains.
func isTwilioHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "twilio.com" || strings.HasSuffix(host, ".twilio.com")
}

// callKind says what a failed call may have done.
type callKind int

const (
	// idempotent calls (reads, webhook updates) change nothing when
	// repeated.
	idempotent callKind = iota
	// creating calls (new messages) may have created something when they
	// fail without a clear answer: a timeout, a 500.
	creating
)

// do runs fn once with a fresh twilio-go API service bound to ctx and the
// configured timeout, and classifies a failure for the core as a
// *bridgev2.Error: 429/20429 is rate-limited (with Retry-After); 503/20503
// and failures to connect are temporary; other 5xx and network failures
// are temporary and, for creating calls, unconfirmed (the message may
// exist); 401/20003 sets BAD_CREDENTIALS and is permanent, as is every
// other Twilio error, with a sentence from errorSentences.
func (r *restClient) do(ctx context.Context, op string, kind callKind, fn func(api *openapi.ApiService) error) error {
	return r.call(ctx, op, kind, func(h *client.RequestHandler) error { return fn(openapi.NewApiService(h)) })
}

// call is do for any of twilio-go's products: fn builds its product's API
// service on the request handler it is given.
func (r *restClient) call(ctx context.Context, op string, kind callKind, fn func(h *client.RequestHandler) error) error {
	cfg := &r.conn.cfg
	if err := ctx.Err(); err != nil {
		return err
	}
	attemptCtx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	tr := &callTransport{base: r.conn.transport, ctx: attemptCtx, apiBase: cfg.apiBase}
	tc := &client.Client{
		Credentials: client.NewCredentials(r.creds.User, r.creds.Pass),
		HTTPClient: &http.Client{
			Transport: tr,
			// A backstop; the attempt's context carries the real deadline.
			Timeout:       cfg.RequestTimeout + time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	tc.SetAccountSid(r.creds.AccountSID)
	handler := client.NewRequestHandler(tc)
	handler.Edge, handler.Region = cfg.Edge, cfg.Region
	err := fn(handler)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	status, retryAfter := tr.answer()
	re := classify(op, kind, err, status)
	r.conn.reportAPIError(re.metricCode())
	switch {
	case re.Status == http.StatusUnauthorized || re.Code == codeAuthenticate:
		if r.onBadCredentials != nil {
			r.onBadCredentials(ctx, re)
		}
		return bridgev2.NewError("Twilio rejected the auth token (or API key) of this login; log in again with current credentials.", re)
	case re.Status == http.StatusTooManyRequests:
		return bridgev2.RateLimitedError("Twilio is rate-limiting requests.", parseRetryAfter(retryAfter), re)
	case re.Status == http.StatusServiceUnavailable:
		r.unreachable(re)
		return bridgev2.RateLimitedError("Twilio is temporarily unavailable (HTTP 503).", parseRetryAfter(retryAfter), re)
	case re.Network || re.Status >= 500:
		r.unreachable(re)
		msg := fmt.Sprintf("Twilio is having trouble (HTTP %d).", re.Status)
		if re.Network {
			msg = "Twilio could not be reached."
		}
		if re.Ambiguous {
			return bridgev2.UnconfirmedError(msg, re)
		}
		return bridgev2.RetriableError(msg, re)
	default:
		return bridgev2.NewError(errorSentence(re.Code, re.Message), re)
	}
}

// unreachable tells the login that Twilio did not answer properly.
func (r *restClient) unreachable(re *restError) {
	if r.onUnreachable != nil {
		r.onUnreachable(re)
	}
}

// classify turns a twilio-go error into a restError.
func classify(op string, kind callKind, err error, status int) *restError {
	re := &restError{Op: op, Status: status, Err: err}
	var tre *client.TwilioRestError
	var v1 *client.RestErrorV1
	var urlErr *url.Error
	switch {
	case errors.As(err, &tre):
		re.Code, re.Message = tre.Code, tre.Message
		if tre.Status != 0 {
			re.Status = tre.Status
		}
	case errors.As(err, &v1):
		re.Code, re.Message = v1.Code, v1.Message
		if v1.HttpStatusCode != 0 {
			re.Status = v1.HttpStatusCode
		}
	case errors.As(err, &urlErr) || isNetError(err):
		re.Network, re.Status = true, 0
	case status >= 200 && status < 300:
		// A success whose body could not be read: the server misbehaved,
		// and for a create, something may have been created.
		re.Status = http.StatusBadGateway
	}
	switch {
	case re.Code == codeTooManyRequests:
		re.Status = http.StatusTooManyRequests
	case re.Code == codeServiceUnavailable:
		re.Status = http.StatusServiceUnavailable
	case re.Network:
		re.Ambiguous = kind == creating && !neverSent(err)
	case re.Status >= 500 && re.Status != http.StatusServiceUnavailable:
		re.Ambiguous = kind == creating
	}
	return re
}

// isNetError reports whether err came from the network rather than from an
// HTTP answer.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// neverSent reports whether a network error happened before the request
// could reach Twilio (DNS, connect), so even a create may be repeated.
func neverSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// nextPage reads the paging parameters of a list envelope's next_page_uri.
func nextPage(uri *string) (token, page string, ok bool) {
	if uri == nil || *uri == "" {
		return "", "", false
	}
	u, err := url.Parse(*uri)
	if err != nil {
		return "", "", false
	}
	q := u.Query()
	token, page = q.Get("PageToken"), q.Get("Page")
	return token, page, token != "" || page != ""
}

// fetchAccount reads the account, which verifies the credentials.
func (r *restClient) fetchAccount(ctx context.Context) (*openapi.ApiV2010Account, error) {
	var acct *openapi.ApiV2010Account
	err := r.do(ctx, "fetch account", idempotent, func(api *openapi.ApiService) error {
		var err error
		acct, err = api.FetchAccount(r.creds.AccountSID)
		return err
	})
	return acct, err
}

// numberInfo is an incoming phone number of the account.
type numberInfo struct {
	SID    string
	E164   string
	SMSURL string
}

// maxListPages bounds every paged listing, so a misbehaving API cannot keep
// the connector paging forever.
const maxListPages = 100

// listSMSNumbers lists the account's numbers that can send and receive SMS,
// following paging.
func (r *restClient) listSMSNumbers(ctx context.Context) ([]numberInfo, error) {
	var out []numberInfo
	token, page := "", ""
	for range maxListPages {
		var resp *openapi.ListIncomingPhoneNumberResponse
		err := r.do(ctx, "list phone numbers", idempotent, func(api *openapi.ApiService) error {
			var err error
			resp, err = api.PageIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPageSize(100), token, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, n := range resp.IncomingPhoneNumbers {
			if n.Sid == nil || n.PhoneNumber == nil || n.Capabilities == nil || !n.Capabilities.Sms {
				continue
			}
			e164, err := parseTwilioNumber(*n.PhoneNumber)
			if err != nil {
				continue
			}
			out = append(out, numberInfo{SID: *n.Sid, E164: e164, SMSURL: deref(n.SmsUrl)})
		}
		var ok bool
		if token, page, ok = nextPage(resp.NextPageUri); !ok {
			return out, nil
		}
	}
	return out, nil
}

// accountNumbers are the SMS webhooks (sms_url) of an account's numbers by
// number SID; complete says the listing held them all.
type accountNumbers struct {
	smsURL   map[string]string
	complete bool
}

// numbersPageSize is Twilio's largest page: an account's 10,000 numbers
// are listed in 10 calls.
const numbersPageSize = 1000

// listNumberWebhooks lists every number of the account with its SMS
// webhook, following paging up to maxListPages pages.
func (r *restClient) listNumberWebhooks(ctx context.Context) (accountNumbers, error) {
	out := accountNumbers{smsURL: map[string]string{}}
	token, page := "", ""
	for range maxListPages {
		var resp *openapi.ListIncomingPhoneNumberResponse
		err := r.do(ctx, "list phone numbers", idempotent, func(api *openapi.ApiService) error {
			var err error
			resp, err = api.PageIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPageSize(numbersPageSize), token, page)
			return err
		})
		if err != nil {
			return accountNumbers{}, err
		}
		for _, n := range resp.IncomingPhoneNumbers {
			if n.Sid != nil {
				out.smsURL[*n.Sid] = deref(n.SmsUrl)
			}
		}
		var ok bool
		if token, page, ok = nextPage(resp.NextPageUri); !ok {
			out.complete = true
			return out, nil
		}
	}
	return out, nil
}

// fetchNumber reads one incoming phone number.
func (r *restClient) fetchNumber(ctx context.Context, sid string) (*openapi.ApiV2010IncomingPhoneNumber, error) {
	var n *openapi.ApiV2010IncomingPhoneNumber
	err := r.do(ctx, "fetch phone number", idempotent, func(api *openapi.ApiService) error {
		var err error
		n, err = api.FetchIncomingPhoneNumber(sid, nil)
		return err
	})
	return n, err
}

// setSMSURL points a number's incoming-message webhook at u (POST), or
// clears it when u is empty.
func (r *restClient) setSMSURL(ctx context.Context, sid, u string) error {
	return r.do(ctx, "update phone number webhook", idempotent, func(api *openapi.ApiService) error {
		params := (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl(u)
		if u != "" {
			params.SetSmsMethod(http.MethodPost)
		}
		_, err := api.UpdateIncomingPhoneNumber(sid, params)
		if err == nil {
			// The shared list of numbers has the old webhook.
			r.conn.numbers.forget()
		}
		return err
	})
}

// createMessage creates (sends) a message.
func (r *restClient) createMessage(ctx context.Context, params *openapi.CreateMessageParams) (*openapi.ApiV2010Message, error) {
	var m *openapi.ApiV2010Message
	err := r.do(ctx, "create message", creating, func(api *openapi.ApiService) error {
		var err error
		m, err = api.CreateMessage(params)
		return err
	})
	return m, err
}

// listMessages lists messages matching params, newest first, page by page,
// until limit messages were collected (0: no limit), a page reached back
// past stopBefore (zero: never), or the list ends. It reports whether it
// got everything asked for, rather than running into maxListPages or the
// limit first. Twilio filters dates by whole days, so stopBefore saves a
// busy number paging through the rest of the day.
func (r *restClient) listMessages(ctx context.Context, params *openapi.ListMessageParams, pageSize, limit int, stopBefore time.Time) ([]openapi.ApiV2010Message, bool, error) {
	params.SetPageSize(pageSize)
	var out []openapi.ApiV2010Message
	token, page := "", ""
	for range maxListPages {
		var resp *openapi.ListMessageResponse
		err := r.do(ctx, "list messages", idempotent, func(api *openapi.ApiService) error {
			var err error
			resp, err = api.PageMessage(params, token, page)
			return err
		})
		if err != nil {
			return nil, false, err
		}
		out = append(out, resp.Messages...)
		var more bool
		token, page, more = nextPage(resp.NextPageUri)
		if limit > 0 && len(out) >= limit {
			return out[:limit], !more && len(out) == limit, nil
		}
		if n := len(resp.Messages); !more || (!stopBefore.IsZero() && n > 0 && messageTime(&resp.Messages[n-1]).Before(stopBefore)) {
			return out, true, nil
		}
	}
	return out, false, nil
}

// listMedia lists the media of a message in the order the API returns
// them (creation order).
func (r *restClient) listMedia(ctx context.Context, messageSID string) ([]openapi.ApiV2010Media, error) {
	var out []openapi.ApiV2010Media
	token, page := "", ""
	for range maxListPages {
		var resp *openapi.ListMediaResponse
		err := r.do(ctx, "list media", idempotent, func(api *openapi.ApiService) error {
			var err error
			resp, err = api.PageMedia(messageSID, (&openapi.ListMediaParams{}).SetPageSize(20), token, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.MediaList...)
		var ok bool
		if token, page, ok = nextPage(resp.NextPageUri); !ok {
			break
		}
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
