package twiliosim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Paging follows Twilio's list envelopes: PageSize (default 50, at most
// 1000), Page (the page number, echoed back) and PageToken. Tokens are "PA"
// followed by the SID of the last item of the previous page (the next page
// starts after it) or "PB" followed by the SID of the first item of the
// following page (the previous page ends before it), as Twilio's tokens are.
// Anchoring pages on SIDs keeps them stable while new items arrive.

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pageParams are a list request's paging parameters.
type pageParams struct {
	size  int
	page  int
	token string
}

// parsePageParams reads PageSize, Page and PageToken from a query.
func parsePageParams(q url.Values) (pageParams, *apiError) {
	p := pageParams{size: defaultPageSize, token: q.Get("PageToken")}
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, errBadParam("Invalid PageSize %q: must be an integer between 1 and %d", v, maxPageSize)
		}
		// Twilio serves at most 1000 records a page whatever is asked.
		p.size = min(n, maxPageSize)
	}
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errBadParam("Invalid Page %q: must be a non-negative integer", v)
		}
		p.page = n
	}
	if p.token != "" && (len(p.token) < 3 || (p.token[:2] != "PA" && p.token[:2] != "PB")) {
		return p, errBadParam("Invalid PageToken %q", p.token)
	}
	return p, nil
}

// pageSlice is one page cut out of a filtered, ordered list.
type pageSlice[T any] struct {
	items   []T
	hasPrev bool
	hasNext bool
}

// paginate cuts the page p asks for out of all, whose items are identified
// by sidOf.
func paginate[T any](all []T, sidOf func(T) string, p pageParams) (pageSlice[T], *apiError) {
	offset := p.page * p.size
	if p.token != "" {
		anchor := p.token[2:]
		idx := -1
		for i, it := range all {
			if sidOf(it) == anchor {
				idx = i
				break
			}
		}
		if idx < 0 {
			return pageSlice[T]{}, errBadParam("Invalid PageToken %q", p.token)
		}
		if p.token[:2] == "PA" {
			offset = idx + 1
		} else {
			offset = max(idx-p.size, 0)
		}
	}
	offset = min(offset, len(all))
	end := min(offset+p.size, len(all))
	return pageSlice[T]{
		items:   all[offset:end],
		hasPrev: offset > 0,
		hasNext: end < len(all),
	}, nil
}

// queryParam is one name=value pair of a page URI, kept in order so URIs
// list filters first and paging last, as Twilio's do.
type queryParam struct{ name, value string }

// encodeQuery encodes pairs in order. Names are escaped too: "DateSent>"
// must travel as "DateSent%3E".
func encodeQuery(pairs []queryParam) string {
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.value))
	}
	return b.String()
}

// pageEnvelope builds Twilio's list envelope around items, stored under key
// ("messages", "media_list", "incoming_phone_numbers"). filters are the
// request's filter parameters, repeated in every page URI so that following
// next_page_uri keeps filtering.
func pageEnvelope[T any](path, key string, filters []queryParam, p pageParams, pg pageSlice[T], sidOf func(T) string, render func(T) any) map[string]any {
	uri := func(page int, token string) string {
		q := append([]queryParam{}, filters...)
		q = append(q, queryParam{"PageSize", strconv.Itoa(p.size)}, queryParam{"Page", strconv.Itoa(page)})
		if token != "" {
			q = append(q, queryParam{"PageToken", token})
		}
		return path + "?" + encodeQuery(q)
	}
	rendered := make([]any, 0, len(pg.items))
	for _, it := range pg.items {
		rendered = append(rendered, render(it))
	}
	start := p.page * p.size
	env := map[string]any{
		"first_page_uri":    uri(0, ""),
		"end":               max(start, start+len(pg.items)-1),
		"previous_page_uri": nil,
		"uri":               uri(p.page, p.token),
		"page_size":         p.size,
		"start":             start,
		"next_page_uri":     nil,
		"page":              p.page,
		key:                 rendered,
	}
	if pg.hasNext && len(pg.items) > 0 {
		env["next_page_uri"] = uri(p.page+1, "PA"+sidOf(pg.items[len(pg.items)-1]))
	}
	if pg.hasPrev && len(pg.items) > 0 && p.page > 0 {
		env["previous_page_uri"] = uri(p.page-1, "PB"+sidOf(pg.items[0]))
	}
	return env
}

// metaPage builds the list envelope of the APIs newer than 2010-04-01
// (Conversations, Messaging, Content): the items under key and a "meta"
// object whose page URLs are absolute, on the simulator's own address, so
// that a client following next_page_url keeps talking to the simulator.
func metaPage[T any](baseURL, path, key string, filters []queryParam, p pageParams, pg pageSlice[T], sidOf func(T) string, render func(T) any) map[string]any {
	url := func(page int, token string) string {
		q := append([]queryParam{}, filters...)
		q = append(q, queryParam{"PageSize", strconv.Itoa(p.size)}, queryParam{"Page", strconv.Itoa(page)})
		if token != "" {
			q = append(q, queryParam{"PageToken", token})
		}
		return baseURL + path + "?" + encodeQuery(q)
	}
	rendered := make([]any, 0, len(pg.items))
	for _, it := range pg.items {
		rendered = append(rendered, render(it))
	}
	meta := map[string]any{
		"first_page_url":    url(0, ""),
		"key":               key,
		"next_page_url":     nil,
		"page":              p.page,
		"page_size":         p.size,
		"previous_page_url": nil,
		"url":               url(p.page, p.token),
	}
	if pg.hasNext && len(pg.items) > 0 {
		meta["next_page_url"] = url(p.page+1, "PA"+sidOf(pg.items[len(pg.items)-1]))
	}
	if pg.hasPrev && len(pg.items) > 0 && p.page > 0 {
		meta["previous_page_url"] = url(p.page-1, "PB"+sidOf(pg.items[0]))
	}
	return map[string]any{key: rendered, "meta": meta}
}

// listResources answers a list request of the newer APIs. collect runs
// with the state lock held and returns the items in order, or found false
// for a 404 when the resource they belong to does not exist.
func listResources[T any](s *Server, w http.ResponseWriter, r *http.Request, key string, filters []queryParam,
	collect func() (items []T, found bool), sidOf func(T) string) {
	p, apiErr := parsePageParams(r.URL.Query())
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	s.mu.Lock()
	all, found := collect()
	base := s.baseURL
	s.mu.Unlock()
	if !found {
		writeAPIError(w, errNotFound(r.URL.Path))
		return
	}
	pg, apiErr := paginate(all, sidOf, p)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, metaPage(base, r.URL.Path, key, filters, p, pg, sidOf, func(v T) any { return v }))
}
