package twiliosim

import (
	"net/http"
	"net/url"
	"testing"

	lookups "github.com/twilio/twilio-go/rest/lookups/v2"
)

func TestLookupThroughTwilioGo(t *testing.T) {
	sim, acct := startSim(t, Options{})
	api := lookups.NewApiService(requestHandler(t, sim, acct))
	sim.SetLookup(theirNumber, LookupInfo{CallerName: "Ada Lovelace", CarrierName: "Sim Mobile"})
	sim.SetLookup(otherPhone, LookupInfo{LineType: LineTypeLandline, CallerName: "ACME", CallerType: CallerTypeBusiness})

	got, err := api.FetchPhoneNumber(theirNumber, (&lookups.FetchPhoneNumberParams{}).SetFields("caller_name,line_type_intelligence"))
	if err != nil {
		t.Fatalf("FetchPhoneNumber: %v", err)
	}
	if !got.Valid || *got.PhoneNumber != theirNumber || *got.CountryCode != "US" || *got.NationalFormat != "(555) 123-0001" ||
		got.CallerName.CallerName != "Ada Lovelace" || got.CallerName.CallerType != CallerTypeConsumer ||
		got.LineTypeIntelligence.Type != LineTypeMobile || got.LineTypeIntelligence.CarrierName != "Sim Mobile" {
		t.Fatalf("lookup = %+v", got)
	}

	landline, err := api.FetchPhoneNumber(otherPhone, (&lookups.FetchPhoneNumberParams{}).SetFields("line_type_intelligence"))
	if err != nil {
		t.Fatal(err)
	}
	if landline.LineTypeIntelligence.Type != LineTypeLandline || landline.CallerName.CallerName != "" {
		t.Fatalf("landline lookup = %+v (caller_name was not asked for)", landline)
	}

	tollFree, err := api.FetchPhoneNumber("+18005550199", (&lookups.FetchPhoneNumberParams{}).SetFields("line_type_intelligence"))
	if err != nil || tollFree.LineTypeIntelligence.Type != LineTypeTollFree {
		t.Fatalf("toll-free lookup = %+v, %v", tollFree, err)
	}

	// A national number takes the CountryCode; outside the US there is no
	// caller name, only Twilio's 60600.
	uk, err := api.FetchPhoneNumber("07700 900123", (&lookups.FetchPhoneNumberParams{}).SetCountryCode("GB").SetFields("caller_name"))
	if err != nil || *uk.PhoneNumber != "+447700900123" || uk.CallerName.ErrorCode != CodeLookupOutOfCoverage {
		t.Fatalf("UK lookup = %+v, %v", uk, err)
	}

	bad, err := api.FetchPhoneNumber("+1555", nil)
	if err != nil || bad.Valid || len(bad.ValidationErrors) != 1 || bad.ValidationErrors[0] != "TOO_SHORT" {
		t.Fatalf("short number lookup = %+v, %v", bad, err)
	}

	_, err = api.FetchPhoneNumber(theirNumber, (&lookups.FetchPhoneNumberParams{}).SetFields("horoscope"))
	restError(t, err, http.StatusBadRequest, CodeLookupInvalidParameter)

	// The refused request looked nothing up.
	if n := sim.LookupCount(theirNumber); n != 1 {
		t.Fatalf("LookupCount(%s) = %d, want 1", theirNumber, n)
	}
	if n := acct.APICalls()["GET lookups.twilio.com/v2/PhoneNumbers/{PhoneNumber}"]; n != 6 {
		t.Fatalf("lookup API calls = %d, want 6", n)
	}
}

func TestLookupConformsToTheSpec(t *testing.T) {
	sim, acct := startSim(t, Options{})
	sim.SetLookup(theirNumber, LookupInfo{CallerName: "Ada Lovelace"})
	path := "/v2/PhoneNumbers/" + url.PathEscape(theirNumber)
	pattern := "/v2/PhoneNumbers/{PhoneNumber}"
	checkSpecCases(t, sim, acct, apis[apiLookups].spec, true, []specCase{
		{pattern, "GET", path, ""},
		{pattern, "GET", path + "?Fields=caller_name%2Cline_type_intelligence", ""},
		{pattern, "GET", "/v2/PhoneNumbers/12", ""},
	})
}

func init() {
	exercisedBy["lookups"] = []string{"GET /v2/PhoneNumbers/{PhoneNumber}"}
}
