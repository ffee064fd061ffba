package provisioning

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// authedHandler serves a request for an authenticated user. It writes the
// success response itself and returns the failure to answer, if any.
type authedHandler func(w http.ResponseWriter, r *http.Request, user *bridgev2.User) *apiError

// requestInfo carries what the access log wants to know from inside the
// handler.
type requestInfo struct {
	user id.UserID
}

type requestInfoKey struct{}

// middleware adds what every response needs: CORS headers (browser-based
// managers call the API from another origin; auth is a bearer token, never
// a cookie, so allowing any origin exposes nothing), the body size limit
// and an access log line.
func (a *API) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "86400")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodySize)
		info := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		// Log the route pattern, not the path: paths carry identifiers
		// such as phone numbers.
		a.log.Debug().Str("method", r.Method).Str("route", strings.TrimPrefix(r.Pattern, r.Method+" ")).
			Int("status", rec.status).Dur("duration", time.Since(start)).Stringer("user_id", info.user).
			Msg("Provisioning request")
	})
}

// statusRecorder remembers the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// authed authenticates the request, then runs h for the user.
func (a *API) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := a.authenticate(r)
		if err == nil {
			if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
				info.user = user.MXID
			}
			log := a.log.With().Stringer("user_id", user.MXID).Logger()
			r = r.WithContext(log.WithContext(r.Context()))
			err = h(w, r, user)
		}
		if err != nil {
			a.fail(w, r, err)
		}
	})
}

// fail answers err, logging failures of the bridge with their cause.
// Refusals (4xx, and 501 for features the network lacks) are routine.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err *apiError) {
	log := zerolog.Ctx(r.Context())
	if log.GetLevel() == zerolog.Disabled {
		log = &a.log
	}
	if err.Status >= http.StatusInternalServerError && err.Status != http.StatusNotImplemented {
		log.Error().Err(err.cause).Str("errcode", err.ErrCode).Str("route", r.Pattern).Msg("Provisioning request failed")
	} else {
		log.Debug().Err(err.cause).Str("errcode", err.ErrCode).Int("status", err.Status).Str("route", r.Pattern).Msg("Provisioning request refused")
	}
	writeJSON(w, err.Status, err)
}

// unrecognized answers paths under PathPrefix that match no route, in
// the Matrix way: 405 when the path exists with another method, else 404.
func (a *API) unrecognized(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := a.routes.Handler(probe); pattern != PathPrefix {
			allowed = append(allowed, method)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		a.fail(w, r, newError(http.StatusMethodNotAllowed, errcodeUnrecognized, "Invalid method for endpoint."))
		return
	}
	a.fail(w, r, newError(http.StatusNotFound, errcodeUnrecognized, "Unrecognized endpoint."))
}
