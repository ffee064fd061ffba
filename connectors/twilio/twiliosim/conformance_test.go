package twiliosim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The conformance tests hold the simulator to Twilio's OpenAPI descriptions
// in shared/twilio/: the routes it serves, the parameters it reads and the
// JSON it answers with. Each product's routes are checked against its own
// file (apis.go says which).

const specDir = "shared/twilio"

var (
	specMu    sync.Mutex
	specCache = map[string]map[string]any{}
)

// loadSpec finds an OpenAPI file of specDir by walking up from the package
// directory (it lives in shared/ beside the repository) and decodes it. The
// test is skipped only when the file is absent.
func loadSpec(t *testing.T, name string) map[string]any {
	t.Helper()
	specMu.Lock()
	defer specMu.Unlock()
	if spec, ok := specCache[name]; ok {
		return spec
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, specDir, name)
		if data, err := os.ReadFile(p); err == nil {
			var spec map[string]any
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatalf("decoding %s: %v", p, err)
			}
			specCache[name] = spec
			return spec
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skipf("%s not found above the package directory", filepath.Join(specDir, name))
		}
		dir = parent
	}
}

// specOp returns the spec's operation for a path template and method.
func specOp(spec map[string]any, pattern, method string) (map[string]any, bool) {
	item, ok := spec["paths"].(map[string]any)[pattern].(map[string]any)
	if !ok {
		return nil, false
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	return op, ok
}

// resolve follows a schema's $ref, if any.
func resolve(spec, schema map[string]any) map[string]any {
	ref, ok := schema["$ref"].(string)
	if !ok {
		return schema
	}
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	return spec["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
}

func TestRoutesAndParametersAreInTheSpec(t *testing.T) {
	sim := New(Options{})
	defer sim.Close()
	for _, rt := range sim.routes {
		if rt.specExempt != "" {
			continue
		}
		if apis[rt.api].spec == "" {
			t.Errorf("%s %s: its API has no OpenAPI file, so the route needs a specExempt reason", rt.method, rt.pattern)
			continue
		}
		spec := loadSpec(t, apis[rt.api].spec)
		op, ok := specOp(spec, rt.pattern, rt.method)
		if !ok {
			t.Errorf("%s %s is not in %s", rt.method, rt.pattern, apis[rt.api].spec)
			continue
		}
		var query []string
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			p := p.(map[string]any)
			if p["in"] == "query" {
				query = append(query, p["name"].(string))
			}
			if p["in"] == "path" && !strings.Contains(rt.pattern, "{"+p["name"].(string)+"}") {
				t.Errorf("%s %s: path parameter %s missing from the pattern", rt.method, rt.pattern, p["name"])
			}
		}
		for _, q := range rt.queryParams {
			if !slices.Contains(query, q) {
				t.Errorf("%s %s reads query parameter %q, which the spec does not declare (it has %v)", rt.method, rt.pattern, q, query)
			}
		}
		var fields map[string]any
		if body, ok := op["requestBody"].(map[string]any); ok {
			if form, ok := body["content"].(map[string]any)["application/x-www-form-urlencoded"].(map[string]any); ok {
				fields, _ = resolve(spec, form["schema"].(map[string]any))["properties"].(map[string]any)
			}
		}
		for _, f := range rt.formFields {
			if _, ok := fields[f]; !ok {
				t.Errorf("%s %s reads form field %q, which the spec does not declare", rt.method, rt.pattern, f)
			}
		}
	}
}

// specCase is one request whose answer is checked against the schema the
// spec declares for the answer's status.
type specCase struct {
	pattern, method, path, body string
}

// checkSpecCases runs each case as acct and checks the answers against
// the named spec file.
func checkSpecCases(t *testing.T, sim *Server, acct *Account, specFile string, lenientNull bool, cases []specCase) {
	t.Helper()
	c := conformer{spec: loadSpec(t, specFile), lenientNull: lenientNull}
	for _, sc := range cases {
		t.Run(sc.method+" "+sc.path, func(t *testing.T) {
			var resp *http.Response
			switch sc.method {
			case http.MethodGet:
				resp = rawGet(t, sim, sc.path, acct.SID(), acct.AuthToken())
			default:
				resp = rawRequest(t, sim, sc.method, sc.path, acct, sc.body)
			}
			raw, _ := io.ReadAll(resp.Body)
			if problems := c.checkAnswer(sc.pattern, sc.method, resp.StatusCode, raw); len(problems) > 0 {
				t.Errorf("%s", strings.Join(problems, "\n"))
			}
		})
	}
}

// checkAnswer checks a status and JSON body against what the spec declares
// for the operation.
func (c conformer) checkAnswer(pattern, method string, status int, raw []byte) []string {
	op, ok := specOp(c.spec, pattern, method)
	if !ok {
		return []string{fmt.Sprintf("%s %s not in the spec", method, pattern)}
	}
	r, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("status %d is not a response the spec declares: %s", status, raw)}
	}
	content, _ := r["content"].(map[string]any)
	js, ok := content["application/json"].(map[string]any)
	if !ok {
		if len(raw) != 0 {
			return []string{fmt.Sprintf("status %d has no body in the spec, got %s", status, raw)}
		}
		return nil
	}
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		return []string{fmt.Sprintf("%s: %v", raw, err)}
	}
	return c.check(js["schema"].(map[string]any), body, "$")
}

// exercisedBy lists, per product test, the operations whose answers it
// checks against the spec; TestEveryRouteIsSchemaChecked holds the union to
// the route table.
var exercisedBy = map[string][]string{}

func TestEveryRouteIsSchemaChecked(t *testing.T) {
	sim := New(Options{})
	defer sim.Close()
	var all []string
	for _, ops := range exercisedBy {
		all = append(all, ops...)
	}
	for _, rt := range sim.routes {
		if rt.specExempt != "" {
			continue
		}
		if !slices.Contains(all, rt.method+" "+rt.pattern) {
			t.Errorf("%s %s has no schema check", rt.method, rt.pattern)
		}
	}
}

func TestResponsesMatchTheSpecSchemas(t *testing.T) {
	sim, acct := startSim(t, Options{})
	svc, err := acct.AddMessagingService("", ourNumber)
	if err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	if err := acct.SetSMSURL(ourNumber, b.url("/sms")); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	// A log with every kind of value: inbound MMS from a service number,
	// an undelivered outbound with an error code, a queued one (null
	// date_sent), a Messaging Service one.
	in, err := sim.SendInbound(ctx, InboundMessage{From: theirNumber, To: ourNumber, Body: "in",
		Media: []MediaFile{{ContentType: "image/png", Data: []byte("png")}}})
	if err != nil {
		t.Fatal(err)
	}
	sim.SetRecipient(otherPhone, RecipientConfig{Behavior: Undeliverable, ErrorCode: CodeLandline})
	api := accountAPI(t, sim, acct)
	failed := send(t, api, otherPhone, "x", "")
	if _, err := sim.WaitMessage(ctx, failed, nil); err != nil {
		t.Fatal(err)
	}
	sim.PauseOutbound()
	send(t, api, theirNumber, "queued", "")
	numberSID := acct.s.numbers[ourNumber].sid
	list, err := api.ListMedia(in.MessageSID, nil)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListMedia: %v", err)
	}

	a := acct.SID()
	checkSpecCases(t, sim, acct, apis[apiV2010].spec, false, []specCase{
		{"/2010-04-01/Accounts/{Sid}.json", "GET", accountURI(a), ""},
		{"/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json", "GET", numbersURI(a), ""},
		{"/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", "GET", numberURI(a, numberSID), ""},
		{"/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json", "POST", numberURI(a, numberSID), "SmsMethod=GET"},
		{"/2010-04-01/Accounts/{AccountSid}/Messages.json", "POST", messagesURI(a), "To=%2B15551230001&From=%2B15005550006&Body=hi&MediaUrl=http%3A%2F%2F127.0.0.1%3A1%2Fa.png"},
		{"/2010-04-01/Accounts/{AccountSid}/Messages.json", "POST", messagesURI(a), "To=%2B15551230001&MessagingServiceSid=" + svc + "&Body=hi"},
		{"/2010-04-01/Accounts/{AccountSid}/Messages.json", "GET", messagesURI(a) + "?PageSize=2", ""},
		{"/2010-04-01/Accounts/{AccountSid}/Messages.json", "GET", messagesURI(a) + "?PageSize=2&Page=1&PageToken=PA" + in.MessageSID, ""},
		{"/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", "GET", messageURI(a, in.MessageSID), ""},
		{"/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", "GET", messageURI(a, failed), ""},
		{"/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json", "GET", mediaListURI(a, in.MessageSID), ""},
		{"/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json", "GET", *list[0].Uri, ""},
	})
}

func init() {
	exercisedBy["v2010"] = []string{
		"GET /2010-04-01/Accounts/{Sid}.json",
		"GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
		"GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
		"POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
		"POST /2010-04-01/Accounts/{AccountSid}/Messages.json",
		"GET /2010-04-01/Accounts/{AccountSid}/Messages.json",
		"GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
		"GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json",
		"GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}.json",
	}
}

// conformer checks decoded JSON values against a spec's schemas.
type conformer struct {
	spec map[string]any
	// lenientNull accepts null for any property. Lookup v2's schemas
	// declare nothing nullable, yet Twilio's own examples in the same file
	// answer null for every package not asked for, and so does Twilio.
	lenientNull bool
}

// conform checks v against schema strictly; see conformer.check.
func conform(spec, schema map[string]any, v any, at string) []string {
	return conformer{spec: spec}.check(schema, v, at)
}

// check returns the problems of a decoded JSON value against a schema:
// properties emitted but not declared, declared but not emitted, nulls
// where the schema is not nullable, wrong JSON types, values outside an
// enum, strings that break a SID pattern, timestamps that are not RFC 2822
// (date-time-rfc-2822) or RFC 3339 (date-time), URLs that are not absolute
// (uri).
func (c conformer) check(schema map[string]any, v any, at string) []string {
	schema = resolve(c.spec, schema)
	var out []string
	if v == nil {
		if schema["nullable"] != true && !c.lenientNull {
			out = append(out, fmt.Sprintf("%s: null, but the schema is not nullable", at))
		}
		return out
	}
	typ, _ := schema["type"].(string)
	if typ == "" && schema["enum"] != nil {
		typ = "string"
	}
	switch typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T, want object", at, v))
		}
		props, ok := schema["properties"].(map[string]any)
		if !ok {
			return out // a free-form map such as subresource_uris
		}
		for k := range obj {
			if _, ok := props[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: emitted but not in the spec", at, k))
			}
		}
		for k, ps := range props {
			val, ok := obj[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: declared by the spec but not emitted", at, k))
				continue
			}
			out = append(out, c.check(ps.(map[string]any), val, at+"."+k)...)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T, want array", at, v))
		}
		for i, it := range arr {
			out = append(out, c.check(schema["items"].(map[string]any), it, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T, want string", at, v))
		}
		if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, any(s)) {
			out = append(out, fmt.Sprintf("%s: %q not in enum %v", at, s, enum))
		}
		switch schema["format"] {
		case "date-time-rfc-2822":
			if _, err := time.Parse(time.RFC1123Z, s); err != nil {
				out = append(out, fmt.Sprintf("%s: %q is not RFC 2822: %v", at, s, err))
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				out = append(out, fmt.Sprintf("%s: %q is not RFC 3339: %v", at, s, err))
			}
		case "uri":
			// Twilio sends "" for unset URLs (sms_url and friends), and the
			// 2010-04-01 API's *_uri properties are paths on api.twilio.com;
			// *_url properties are absolute.
			u, err := url.Parse(s)
			relativeOK := strings.HasSuffix(at, "uri") && strings.HasPrefix(s, "/")
			if s != "" && !relativeOK && (err != nil || u.Scheme == "" || u.Host == "") {
				out = append(out, fmt.Sprintf("%s: %q is not an absolute URL", at, s))
			}
		}
		// Twilio sends "" for unset application SIDs (the spec's own examples
		// do too), so only non-empty values must match a SID pattern.
		if pat, ok := schema["pattern"].(string); ok && s != "" && !matchSpecPattern(pat, s) {
			out = append(out, fmt.Sprintf("%s: %q does not match %s", at, s, pat))
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			out = append(out, fmt.Sprintf("%s: %v, want integer", at, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			out = append(out, fmt.Sprintf("%s: %T, want boolean", at, v))
		}
	}
	return out
}

// matchSpecPattern checks a string against a spec pattern (SID shapes
// such as ^(SM|MM)[0-9a-fA-F]{32}$, which are Go regular expressions). A
// pattern that does not compile matches nothing, so it cannot go unchecked.
func matchSpecPattern(pattern, s string) bool {
	re, err := regexp.Compile(pattern)
	return err == nil && re.MatchString(s)
}

// TestConformCatchesProblems makes sure the checker above can fail.
func TestConformCatchesProblems(t *testing.T) {
	spec := loadSpec(t, apis[apiV2010].spec)
	schema := map[string]any{"$ref": "#/components/schemas/api.v2010.account.message.media"}
	good := map[string]any{
		"account_sid": "AC" + strings.Repeat("a", 32), "content_type": "image/png",
		"date_created": "Thu, 30 Jul 2015 20:00:00 +0000", "date_updated": "Thu, 30 Jul 2015 20:00:00 +0000",
		"parent_sid": "MM" + strings.Repeat("a", 32), "sid": "ME" + strings.Repeat("a", 32), "uri": "/x",
	}
	if problems := conform(spec, schema, good, "$"); len(problems) != 0 {
		t.Fatalf("good media rejected: %v", problems)
	}
	bad := map[string]any{
		"account_sid": "XX" + strings.Repeat("a", 32), "content_type": 3,
		"date_created": "2015-07-30T20:00:00Z", "parent_sid": "MM" + strings.Repeat("a", 32),
		"sid": "ME" + strings.Repeat("a", 32), "uri": "/x", "extra": true,
	}
	// Wrong prefix, wrong type, wrong date format, missing date_updated,
	// undeclared extra.
	if problems := conform(spec, schema, bad, "$"); len(problems) != 5 {
		t.Fatalf("want 5 problems, got %d: %v", len(problems), problems)
	}
}
