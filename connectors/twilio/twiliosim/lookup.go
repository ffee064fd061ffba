package twiliosim

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Lookup v2 (lookups.twilio.com): GET /v2/PhoneNumbers/{PhoneNumber} with
// the caller_name and line_type_intelligence packages, which is what a
// bridge uses to name contacts and warn before texting a landline. The
// answer follows the LookupResponse schema of twilio_lookups_v2.json.

// Line types of Lookup's line_type_intelligence.type.
const (
	LineTypeMobile       = "mobile"
	LineTypeLandline     = "landline"
	LineTypeFixedVoIP    = "fixedVoip"
	LineTypeNonFixedVoIP = "nonFixedVoip"
	LineTypeTollFree     = "tollFree"
	LineTypePersonal     = "personal"
	LineTypePremium      = "premium"
	LineTypeSharedCost   = "sharedCost"
	LineTypeUAN          = "uan"
	LineTypeVoicemail    = "voicemail"
	LineTypePager        = "pager"
	LineTypeUnknown      = "unknown"
)

// Caller types of Lookup's caller_name.caller_type.
const (
	CallerTypeConsumer = "CONSUMER"
	CallerTypeBusiness = "BUSINESS"
)

// LookupInfo is what Lookup knows about a number; tests set it with
// SetLookup.
type LookupInfo struct {
	// CallerName is the CNAM name, "" for none (null).
	CallerName string
	// CallerType is CallerTypeConsumer (the default when CallerName is
	// set) or CallerTypeBusiness.
	CallerType string
	// LineType is one of the LineType constants; empty derives it from the
	// number (toll-free prefixes give tollFree, anything else mobile).
	LineType string
	// CarrierName is line_type_intelligence.carrier_name.
	CarrierName string
	// Invalid makes Lookup answer valid: false (INVALID_BUT_POSSIBLE).
	Invalid bool
}

// lookupFields are the Fields values Lookup v2 accepts. The simulator
// answers caller_name and line_type_intelligence; the others come back
// null, as packages a number has no data for do.
var lookupFields = []string{
	"validation", "caller_name", "sim_swap", "call_forwarding", "line_status",
	"line_type_intelligence", "identity_match", "reassigned_number",
	"sms_pumping_risk", "phone_number_quality_score", "pre_fill",
}

// Lookup error codes (in caller_name.error_code, and the API error).
const (
	CodeLookupInvalidParameter = 60200 // a malformed query parameter
	CodeLookupOutOfCoverage    = 60600 // caller name outside the US
)

// SetLookup sets what Lookup answers for the E.164 number.
func (s *Server) SetLookup(e164 string, info LookupInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups[e164] = info
}

// LookupCount returns how many Lookup requests were made for the E.164
// number, whatever their Fields: a bridge that caches names looks each
// number up once.
func (s *Server) LookupCount(e164 string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupCounts[e164]
}

func (s *Server) lookupRoutes() []route {
	return []route{
		{api: apiLookups, method: http.MethodGet, pattern: "/v2/PhoneNumbers/{PhoneNumber}", anyParamValue: true,
			queryParams: []string{"Fields", "CountryCode"}, handle: s.handleLookup},
	}
}

type callerNameJSON struct {
	CallerName *string `json:"caller_name"`
	CallerType *string `json:"caller_type"`
	ErrorCode  *int    `json:"error_code"`
}

type lineTypeJSON struct {
	MobileCountryCode *string `json:"mobile_country_code"`
	MobileNetworkCode *string `json:"mobile_network_code"`
	CarrierName       *string `json:"carrier_name"`
	Type              string  `json:"type"`
	ErrorCode         *int    `json:"error_code"`
}

type lookupJSON struct {
	CallingCountryCode      *string         `json:"calling_country_code"`
	CountryCode             *string         `json:"country_code"`
	PhoneNumber             string          `json:"phone_number"`
	NationalFormat          *string         `json:"national_format"`
	Valid                   bool            `json:"valid"`
	ValidationErrors        []string        `json:"validation_errors"`
	CallerName              *callerNameJSON `json:"caller_name"`
	SimSwap                 any             `json:"sim_swap"`
	CallForwarding          any             `json:"call_forwarding"`
	LineStatus              any             `json:"line_status"`
	LineTypeIntelligence    *lineTypeJSON   `json:"line_type_intelligence"`
	IdentityMatch           any             `json:"identity_match"`
	ReassignedNumber        any             `json:"reassigned_number"`
	SMSPumpingRisk          any             `json:"sms_pumping_risk"`
	PhoneNumberQualityScore any             `json:"phone_number_quality_score"`
	PreFill                 any             `json:"pre_fill"`
	URL                     string          `json:"url"`
}

// handleLookup serves GET /v2/PhoneNumbers/{PhoneNumber}.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	var fields []string
	for f := range strings.SplitSeq(q.Get("Fields"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(lookupFields, f) {
			writeAPIError(w, newAPIError(http.StatusBadRequest, CodeLookupInvalidParameter, "Invalid Fields value %q", f))
			return
		}
		fields = append(fields, f)
	}
	region := q.Get("CountryCode")
	if region == "" {
		region = "US" // Lookup's default for national numbers
	}
	raw := plusFix(rc.params["PhoneNumber"])

	num, parseErr := phonenumbers.Parse(raw, strings.ToUpper(region))
	var e164 string
	if parseErr == nil {
		e164 = phonenumbers.Format(num, phonenumbers.E164)
	}

	s.mu.Lock()
	key := e164
	if key == "" {
		key = raw
	}
	s.lookupCounts[key]++
	info := s.lookups[e164]
	base := s.baseURL
	s.mu.Unlock()

	out := lookupJSON{PhoneNumber: raw, URL: base + "/v2/PhoneNumbers/" + raw}
	if reason := validationError(num, parseErr, info); reason != "" {
		out.ValidationErrors = []string{reason}
		writeJSON(w, http.StatusOK, out)
		return
	}
	cc := strconv.Itoa(int(num.GetCountryCode()))
	iso := phonenumbers.GetRegionCodeForNumber(num)
	if iso == "" {
		// Fictional numbers belong to no region; their calling code's main
		// country is the best answer.
		iso = phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode()))
	}
	national := phonenumbers.Format(num, phonenumbers.NATIONAL)
	out.CallingCountryCode, out.CountryCode, out.NationalFormat = &cc, optString(iso), &national
	out.PhoneNumber, out.URL, out.Valid = e164, base+"/v2/PhoneNumbers/"+e164, true
	if slices.Contains(fields, "caller_name") {
		out.CallerName = callerName(iso, info)
	}
	if slices.Contains(fields, "line_type_intelligence") {
		out.LineTypeIntelligence = &lineTypeJSON{Type: lineType(num, e164, info), CarrierName: optString(info.CarrierName)}
	}
	writeJSON(w, http.StatusOK, out)
}

// validationError is Lookup's validation_errors entry for a number, or ""
// for a valid one. The simulator's phones use fictional numbers (555...)
// that real Lookup would call invalid, so any possible number counts as
// valid unless the test marked it Invalid.
func validationError(num *phonenumbers.PhoneNumber, parseErr error, info LookupInfo) string {
	switch {
	case errors.Is(parseErr, phonenumbers.ErrInvalidCountryCode):
		return "INVALID_COUNTRY_CODE"
	case errors.Is(parseErr, phonenumbers.ErrTooShortNSN):
		return "TOO_SHORT"
	case parseErr != nil:
		return "NOT_A_NUMBER"
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.TOO_SHORT:
		return "TOO_SHORT"
	case phonenumbers.TOO_LONG:
		return "TOO_LONG"
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "INVALID_COUNTRY_CODE"
	case phonenumbers.INVALID_LENGTH, phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "INVALID_LENGTH"
	}
	if info.Invalid {
		return "INVALID_BUT_POSSIBLE"
	}
	return ""
}

// callerName is the caller_name package: CNAM exists for US numbers only;
// elsewhere Twilio answers error 60600.
func callerName(iso string, info LookupInfo) *callerNameJSON {
	if iso != "US" {
		code := CodeLookupOutOfCoverage
		return &callerNameJSON{ErrorCode: &code}
	}
	out := &callerNameJSON{CallerName: optString(info.CallerName)}
	if info.CallerName != "" {
		t := info.CallerType
		if t == "" {
			t = CallerTypeConsumer
		}
		out.CallerType = &t
	}
	return out
}

// lineType is the line_type_intelligence type: the test's choice, else what
// the number's shape says.
func lineType(num *phonenumbers.PhoneNumber, e164 string, info LookupInfo) string {
	if info.LineType != "" {
		return info.LineType
	}
	if isNANPTollFree(e164) {
		return LineTypeTollFree
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.FIXED_LINE:
		return LineTypeLandline
	case phonenumbers.TOLL_FREE:
		return LineTypeTollFree
	case phonenumbers.VOIP:
		return LineTypeNonFixedVoIP
	case phonenumbers.PREMIUM_RATE:
		return LineTypePremium
	case phonenumbers.SHARED_COST:
		return LineTypeSharedCost
	case phonenumbers.PERSONAL_NUMBER:
		return LineTypePersonal
	case phonenumbers.PAGER:
		return LineTypePager
	case phonenumbers.UAN:
		return LineTypeUAN
	case phonenumbers.VOICEMAIL:
		return LineTypeVoicemail
	}
	return LineTypeMobile
}

// isNANPTollFree reports a North American toll-free number (+1 800, 833,
// 844, 855, 866, 877, 888).
func isNANPTollFree(e164 string) bool {
	if len(e164) != 12 || !strings.HasPrefix(e164, "+1") {
		return false
	}
	return slices.Contains([]string{"800", "833", "844", "855", "866", "877", "888"}, e164[2:5])
}
