package twiliosim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// seedConversation puts n messages between ourNumber and theirNumber into
// the log, one hour apart starting at start, alternating directions, every
// third one with media. It returns the SIDs oldest first.
func seedConversation(t *testing.T, acct *Account, start time.Time, n int) []string {
	t.Helper()
	var sids []string
	for i := range n {
		m := Message{
			Direction:   DirectionInbound,
			From:        theirNumber,
			To:          ourNumber,
			Body:        fmt.Sprintf("message %d", i),
			DateCreated: start.Add(time.Duration(i) * time.Hour),
		}
		if i%2 == 1 {
			m.Direction, m.From, m.To = DirectionOutboundAPI, ourNumber, theirNumber
		}
		if i%3 == 0 {
			m.Media = []MediaFile{{ContentType: "image/png", Data: []byte(fmt.Sprintf("png %d", i))}}
		}
		sid, err := acct.AddHistory(m)
		if err != nil {
			t.Fatalf("AddHistory: %v", err)
		}
		sids = append(sids, sid)
	}
	return sids
}

func TestListMessagesFollowsNextPageURI(t *testing.T) {
	sim, acct := startSim(t, Options{})
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	sids := seedConversation(t, acct, start, 25)
	api := accountAPI(t, sim, acct)

	// twilio-go fetches pages of 10 and follows next_page_uri until null.
	got, err := api.ListMessage((&openapi.ListMessageParams{}).SetPageSize(10))
	if err != nil {
		t.Fatalf("ListMessage: %v", err)
	}
	var gotSIDs []string
	for _, m := range got {
		gotSIDs = append(gotSIDs, *m.Sid)
	}
	want := slices.Clone(sids)
	slices.Reverse(want) // newest first
	if !slices.Equal(gotSIDs, want) {
		t.Fatalf("paged list:\n got %v\nwant %v", gotSIDs, want)
	}
	if *got[0].Direction != DirectionInbound || *got[1].Direction != DirectionOutboundAPI || *got[0].NumMedia != "1" {
		t.Fatalf("directions/media wrong: %+v / %+v", got[0], got[1])
	}

	t.Run("limit stops early", func(t *testing.T) {
		few, err := api.ListMessage((&openapi.ListMessageParams{}).SetPageSize(4).SetLimit(6))
		if err != nil || len(few) != 6 {
			t.Fatalf("%d messages, %v", len(few), err)
		}
	})

	t.Run("envelope fields and previous_page_uri", func(t *testing.T) {
		first, err := api.PageMessage((&openapi.ListMessageParams{}).SetPageSize(10).SetTo(ourNumber), "", "")
		if err != nil {
			t.Fatal(err)
		}
		if first.Page != 0 || first.PageSize != 10 || first.Start != 0 || first.End != 9 || first.PreviousPageUri != nil ||
			first.NextPageUri == nil || len(first.Messages) != 10 {
			t.Fatalf("first page = %+v", first)
		}
		if !strings.Contains(first.FirstPageUri, "To=%2B15005550006") || !strings.Contains(*first.NextPageUri, "To=%2B15005550006") ||
			!strings.Contains(*first.NextPageUri, "PageToken=PA") || !strings.Contains(*first.NextPageUri, "Page=1") {
			t.Fatalf("page URIs lost the filter or token: first %q next %q", first.FirstPageUri, *first.NextPageUri)
		}
		for _, m := range first.Messages {
			if *m.To != ourNumber {
				t.Fatalf("filter To not applied: %+v", m)
			}
		}
		var second openapi.ListMessageResponse
		getJSON(t, sim, acct, *first.NextPageUri, &second)
		if second.Page != 1 || second.Start != 10 || len(second.Messages) != 3 || second.NextPageUri != nil || second.PreviousPageUri == nil {
			t.Fatalf("second page = %+v", second)
		}
		var back openapi.ListMessageResponse
		getJSON(t, sim, acct, *second.PreviousPageUri, &back)
		if back.Page != 0 || len(back.Messages) != 10 || *back.Messages[0].Sid != *first.Messages[0].Sid {
			t.Fatalf("previous page does not match the first: %+v", back)
		}
	})

	t.Run("Page without token", func(t *testing.T) {
		var page openapi.ListMessageResponse
		getJSON(t, sim, acct, messagesURI(acct.SID())+"?PageSize=10&Page=2", &page)
		if len(page.Messages) != 5 || *page.Messages[0].Sid != want[20] {
			t.Fatalf("page 2 = %d messages", len(page.Messages))
		}
	})

	t.Run("new messages do not shift token pages", func(t *testing.T) {
		first, err := api.PageMessage((&openapi.ListMessageParams{}).SetPageSize(10), "", "")
		if err != nil {
			t.Fatal(err)
		}
		seedConversation(t, acct, start.Add(1000*time.Hour), 3) // newer than everything
		var second openapi.ListMessageResponse
		getJSON(t, sim, acct, *first.NextPageUri, &second)
		if *second.Messages[0].Sid != want[10] {
			t.Fatalf("second page starts at %s, want %s", *second.Messages[0].Sid, want[10])
		}
	})

	t.Run("bad paging parameters", func(t *testing.T) {
		_, err := api.PageMessage(nil, "PAnotasid", "")
		restError(t, err, http.StatusBadRequest, CodeInvalidParameter)
		_, err = api.PageMessage((&openapi.ListMessageParams{}).SetPageSize(0), "", "")
		restError(t, err, http.StatusBadRequest, CodeInvalidParameter)
		big, err := api.PageMessage((&openapi.ListMessageParams{}).SetPageSize(5000), "", "")
		if err != nil || big.PageSize != 1000 {
			t.Fatalf("PageSize 5000: %+v %v", big, err)
		}
	})
}

func TestListMessagesDateSentFilters(t *testing.T) {
	sim, acct := startSim(t, Options{})
	// 48 messages an hour apart: 2024-03-01 and 2024-03-02, all day long.
	seedConversation(t, acct, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), 48)
	api := accountAPI(t, sim, acct)
	count := func(t *testing.T, p *openapi.ListMessageParams) int {
		t.Helper()
		got, err := api.ListMessage(p)
		if err != nil {
			t.Fatalf("ListMessage: %v", err)
		}
		return len(got)
	}
	// twilio-go sends RFC 3339 timestamps; only the day counts.
	afternoon := time.Date(2024, 3, 2, 15, 4, 5, 0, time.UTC)
	if n := count(t, (&openapi.ListMessageParams{}).SetDateSent(afternoon)); n != 24 {
		t.Fatalf("DateSent=2024-03-02: %d", n)
	}
	if n := count(t, (&openapi.ListMessageParams{}).SetDateSentAfter(afternoon)); n != 24 {
		t.Fatalf("DateSent>=2024-03-02: %d", n)
	}
	if n := count(t, (&openapi.ListMessageParams{}).SetDateSentBefore(afternoon)); n != 48 {
		t.Fatalf("DateSent<=2024-03-02: %d", n)
	}
	if n := count(t, (&openapi.ListMessageParams{}).SetDateSentBefore(afternoon.AddDate(0, 0, -1))); n != 24 {
		t.Fatalf("DateSent<=2024-03-01: %d", n)
	}
	if n := count(t, (&openapi.ListMessageParams{}).SetDateSentAfter(afternoon).SetPageSize(5).SetFrom(theirNumber)); n != 12 {
		t.Fatalf("DateSent>=2024-03-02 from them, paged by 5: %d", n)
	}
	// The spec's own spelling: YYYY-MM-DD.
	var page openapi.ListMessageResponse
	getJSON(t, sim, acct, messagesURI(acct.SID())+"?"+url.Values{"DateSent>": {"2024-03-02"}, "PageSize": {"100"}}.Encode(), &page)
	if len(page.Messages) != 24 {
		t.Fatalf("DateSent>=2024-03-02 (raw): %d", len(page.Messages))
	}
	resp := rawGet(t, sim, messagesURI(acct.SID())+"?DateSent=yesterday", acct.SID(), acct.AuthToken())
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad date: %d", resp.StatusCode)
	}
}

func TestListNumbersAndMediaPaging(t *testing.T) {
	sim, acct := startSim(t, Options{})
	for i := range 4 {
		if _, err := acct.AddNumber(fmt.Sprintf("+1500555010%d", i), Capabilities{SMS: true}); err != nil {
			t.Fatal(err)
		}
	}
	api := accountAPI(t, sim, acct)
	nums, err := api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPageSize(2))
	if err != nil || len(nums) != 5 {
		t.Fatalf("numbers paged by 2: %d, %v", len(nums), err)
	}

	var media []MediaFile
	for i := range 7 {
		media = append(media, MediaFile{ContentType: "image/jpeg", Data: []byte{byte(i)}})
	}
	sid, err := acct.AddHistory(Message{From: theirNumber, To: ourNumber, Media: media})
	if err != nil {
		t.Fatal(err)
	}
	list, err := api.ListMedia(sid, (&openapi.ListMediaParams{}).SetPageSize(3))
	if err != nil || len(list) != 7 {
		t.Fatalf("media paged by 3: %d, %v", len(list), err)
	}
	for _, md := range list {
		if *md.ParentSid != sid || *md.ContentType != "image/jpeg" || !strings.HasPrefix(*md.Sid, "ME") {
			t.Fatalf("media = %+v", md)
		}
	}
	_, err = api.ListMedia("MM"+strings.Repeat("a", 32), nil)
	restError(t, err, http.StatusNotFound, CodeNotFound)
}

// getJSON GETs a relative URI (as found in page envelopes) and decodes it.
func getJSON(t *testing.T, sim *Server, acct *Account, uri string, v any) {
	t.Helper()
	resp := rawGet(t, sim, uri, acct.SID(), acct.AuthToken())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", uri, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", uri, err)
	}
}
