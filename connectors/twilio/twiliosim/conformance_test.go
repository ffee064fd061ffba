package twiliosim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conformance test holds the simulator to Twilio's OpenAPI description
// of the 2010-04-01 API: the routes it serves, the parameters it reads and
// the JSON it answers with.

const specRelPath = "shared/twilio/twilio_api_v2010.json"

// loadSpec finds the OpenAPI file by walking up from the package directory
// (it lives in shared/ beside the repository) and decodes it. The test is
// skipped only when the file is absent.
func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, specRelPath)
		if data, err := os.ReadFile(p); err == nil {
			var spec map[string]any
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatalf("decoding %s: %v", p, err)
			}
			return spec
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skipf("%s not found above the package directory", specRelPath)
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
	spec := loadSpec(t)
	sim := New(Options{})
	defer sim.Close()
	for _, rt := range sim.routes {
		if rt.specExempt != "" {
			continue
		}
		op, ok := specOp(spec, rt.pattern, rt.method)
		if !ok {
			t.Errorf("%s %s is not in the spec", rt.method, rt.pattern)
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
			form := body["content"].(map[string]any)["application/x-www-form-urlencoded"].(map[string]any)
			fields = resolve(spec, form["schema"].(map[string]any))["properties"].(map[string]any)
		}
		for _, f := range rt.formFields {
			if _, ok := fields[f]; !ok {
				t.Errorf("%s %s reads form field %q, which the spec does not declare", rt.method, rt.pattern, f)
			}
		}
	}
}

func TestResponsesMatchTheSpecSchemas(t *testing.T) {
	spec := loadSpec(t)
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
	for _, c := range []struct {
		pattern, method, path, body string
	}{
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
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			op, ok := specOp(spec, c.pattern, c.method)
			if !ok {
				t.Fatalf("%s %s not in the spec", c.method, c.pattern)
			}
			var resp *http.Response
			if c.method == "POST" {
				resp = rawPost(t, sim, c.path, acct, c.body)
			} else {
				resp = rawGet(t, sim, c.path, a, acct.AuthToken())
			}
			raw, _ := io.ReadAll(resp.Body)
			r, ok := op["responses"].(map[string]any)[strconv.Itoa(resp.StatusCode)].(map[string]any)
			if !ok {
				t.Fatalf("status %d is not a response the spec declares: %s", resp.StatusCode, raw)
			}
			schema := r["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			var body any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			for _, problem := range conform(spec, schema, body, "$") {
				t.Error(problem)
			}
		})
	}

	t.Run("every served route is exercised here", func(t *testing.T) {
		// Keep this table complete when routes are added.
		for _, rt := range sim.routes {
			if rt.specExempt != "" {
				continue
			}
			if !slices.Contains(exercised, rt.method+" "+rt.pattern) {
				t.Errorf("%s %s has no schema check", rt.method, rt.pattern)
			}
		}
	})
}

// exercised lists the operations TestResponsesMatchTheSpecSchemas checks.
var exercised = []string{
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

// conform checks a decoded JSON value against a schema and returns the
// problems: properties emitted but not declared, declared but not emitted,
// nulls where the schema is not nullable, wrong JSON types, values outside
// an enum, strings that break a pattern, timestamps that are not RFC 2822.
func conform(spec, schema map[string]any, v any, at string) []string {
	schema = resolve(spec, schema)
	var out []string
	if v == nil {
		if schema["nullable"] != true {
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
			out = append(out, conform(spec, ps.(map[string]any), val, at+"."+k)...)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T, want array", at, v))
		}
		for i, it := range arr {
			out = append(out, conform(spec, schema["items"].(map[string]any), it, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T, want string", at, v))
		}
		if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, any(s)) {
			out = append(out, fmt.Sprintf("%s: %q not in enum %v", at, s, enum))
		}
		if schema["format"] == "date-time-rfc-2822" {
			if _, err := time.Parse(time.RFC1123Z, s); err != nil {
				out = append(out, fmt.Sprintf("%s: %q is not RFC 2822: %v", at, s, err))
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

// matchSpecPattern checks the SID patterns the spec uses, of the form
// ^XX[0-9a-fA-F]{32}$ or ^(XX|YY)[0-9a-fA-F]{32}$.
func matchSpecPattern(pattern, s string) bool {
	body, ok := strings.CutSuffix(strings.TrimPrefix(pattern, "^"), "[0-9a-fA-F]{32}$")
	if !ok {
		return true // not a SID pattern; not checked
	}
	prefixes := strings.Split(strings.Trim(body, "()"), "|")
	return len(s) == 34 && slices.Contains(prefixes, s[:2]) && sidPattern.MatchString(s)
}

// TestConformCatchesProblems makes sure the checker above can fail.
func TestConformCatchesProblems(t *testing.T) {
	spec := loadSpec(t)
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
