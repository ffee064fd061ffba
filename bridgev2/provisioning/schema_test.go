package provisioning_test

import (
	"fmt"
	"github.com/trestle-bridge/trestle/bridgev2/provisioning"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// openAPI is a loaded OpenAPI document with a checker for the subset of
// JSON Schema that provisioning.yaml uses: $ref (local), type, properties,
// required, items, additionalProperties, enum, const, allOf, oneOf and
// anyOf. Formats, patterns and numeric bounds are hints for clients and
// are not checked.
type openAPI struct {
	root map[string]any
}

// loadProvisioningSpec finds provisioning.yaml in the mautrix-go module
// this module depends on, skipping the test only if the module cannot be
// found.
func loadProvisioningSpec(t *testing.T) *openAPI {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found, cannot locate the mautrix module: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "maunium.net/go/mautrix").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("mautrix module directory not found (%v)", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bridgev2", "matrix", "provisioning.yaml"))
	if err != nil {
		t.Fatalf("the mautrix module has no provisioning.yaml: %v", err)
	}
	return parseOpenAPI(t, raw)
}

func parseOpenAPI(t *testing.T, raw []byte) *openAPI {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse OpenAPI document: %v", err)
	}
	root, ok := normalizeYAML(doc).(map[string]any)
	if !ok {
		t.Fatal("OpenAPI document is not a mapping")
	}
	return &openAPI{root: root}
}

// normalizeYAML turns yaml.v3's map[any]any (used when some keys, such as
// status codes, are not strings) into map[string]any throughout.
func normalizeYAML(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeYAML(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = normalizeYAML(e)
		}
		return v
	default:
		return v
	}
}

// deref follows $ref chains (only "#/..." references).
func (o *openAPI) deref(node map[string]any) map[string]any {
	for range 32 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		var cur any = o.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			panic("unresolvable $ref " + ref)
		}
		node = next
	}
	panic("$ref loop")
}

// operation returns the spec of a path ("/v3/whoami") and method.
func (o *openAPI) operation(path, method string) map[string]any {
	paths, _ := o.root["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	return op
}

// responseSchema returns the JSON schema of one response of an operation;
// declared is false if the operation lists no such status.
func (o *openAPI) responseSchema(op map[string]any, status int) (schema map[string]any, declared bool) {
	responses, _ := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return nil, false
	}
	resp = o.deref(resp)
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ = media["schema"].(map[string]any)
	return schema, true
}

// validate checks v against schema and returns the violations, each
// prefixed with its JSON path. Objects may only have properties that the
// schema declares (directly or in its allOf/oneOf/anyOf branches) unless
// extraOK accepts the property's path.
func (o *openAPI) validate(schema map[string]any, v any, at string, extraOK func(path string) bool) []string {
	return o.check(schema, v, at, true, extraOK)
}

func (o *openAPI) check(schema map[string]any, v any, at string, strict bool, extraOK func(string) bool) []string {
	if schema == nil {
		return nil
	}
	schema = o.deref(schema)
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }

	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("is %v, want const %v", v, c)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		fail("is %v, not one of %v", v, enum)
	}
	if typ, ok := schema["type"]; ok && !matchesType(typ, v) {
		fail("is %T, want type %v", v, typ)
		return errs
	}
	for _, sub := range schemaList(schema["allOf"]) {
		errs = append(errs, o.check(sub, v, at, false, extraOK)...)
	}
	for _, key := range []string{"oneOf", "anyOf"} {
		branches := schemaList(schema[key])
		if len(branches) == 0 {
			continue
		}
		matched := 0
		var branchErrs []string
		for _, sub := range branches {
			if e := o.check(sub, v, at, false, extraOK); len(e) == 0 {
				matched++
			} else {
				branchErrs = append(branchErrs, e...)
			}
		}
		if matched == 0 || (key == "oneOf" && matched > 1) {
			fail("matches %d of %d %s branches (%s)", matched, len(branches), key, strings.Join(branchErrs, "; "))
		}
	}

	switch v := v.(type) {
	case map[string]any:
		for _, req := range stringList(schema["required"]) {
			if _, ok := v[req]; !ok {
				fail("lacks required property %q", req)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for name, value := range v {
			if sub, ok := props[name].(map[string]any); ok {
				errs = append(errs, o.check(sub, value, at+"."+name, true, extraOK)...)
				continue
			}
			switch extra := schema["additionalProperties"].(type) {
			case map[string]any:
				errs = append(errs, o.check(extra, value, at+"."+name, true, extraOK)...)
				continue
			case bool:
				if !extra {
					fail("has undeclared property %q", name)
				}
				continue
			}
			if strict {
				if allowed := o.allowedProperties(schema); len(allowed) > 0 && !allowed[name] && !extraOK(at+"."+name) {
					fail("has property %q, which the schema does not declare", name)
				}
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, item := range v {
				errs = append(errs, o.check(items, item, fmt.Sprintf("%s[%d]", at, i), true, extraOK)...)
			}
		}
	}
	return errs
}

// allowedProperties lists the properties a schema declares, including in
// its composition branches.
func (o *openAPI) allowedProperties(schema map[string]any) map[string]bool {
	schema = o.deref(schema)
	out := map[string]bool{}
	if props, ok := schema["properties"].(map[string]any); ok {
		for name := range props {
			out[name] = true
		}
	}
	for _, key := range []string{"allOf", "oneOf", "anyOf"} {
		for _, sub := range schemaList(schema[key]) {
			for name := range o.allowedProperties(sub) {
				out[name] = true
			}
		}
	}
	return out
}

func matchesType(typ, v any) bool {
	if list, ok := typ.([]any); ok {
		return slices.ContainsFunc(list, func(t any) bool { return matchesType(t, v) })
	}
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "null":
		return v == nil
	}
	return false
}

func schemaList(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// specPath turns a route pattern ("POST /_matrix/provision/v3/x/{id}")
// into the spec's path ("/v3/x/{id}").
func specPath(pattern string) (method, path string) {
	method, full, _ := strings.Cut(pattern, " ")
	return method, "/" + strings.TrimPrefix(full, provisioning.PathPrefix)
}

var arrayIndex = regexp.MustCompile(`\[\d+\]`)

// normalizePath replaces array indexes by [] for allow-lists.
func normalizePath(path string) string { return arrayIndex.ReplaceAllString(path, "[]") }

// TestSchemaChecker makes sure the checker catches what it should, so a
// passing conformance test means something.
func TestSchemaChecker(t *testing.T) {
	spec := parseOpenAPI(t, []byte(`
components:
  schemas:
    Step:
      type: object
      properties:
        login_id: {type: string}
        type: {type: string, enum: [a, b]}
      oneOf:
      - required: [type, a]
        properties:
          type: {const: a}
          a: {type: object, required: [n], properties: {n: {type: integer}}}
      - required: [type, b]
        properties:
          type: {const: b}
          b: {type: array, items: {type: string}}
`))
	schema := map[string]any{"$ref": "#/components/schemas/Step"}
	none := func(string) bool { return false }
	valid := []map[string]any{
		{"type": "a", "a": map[string]any{"n": 1.0}, "login_id": "x"},
		{"type": "b", "b": []any{"x", "y"}},
	}
	for _, v := range valid {
		if errs := spec.validate(schema, v, "$", none); len(errs) > 0 {
			t.Errorf("valid %v refused: %v", v, errs)
		}
	}
	invalid := []map[string]any{
		{"type": "a"}, // missing a
		{"type": "c", "a": map[string]any{"n": 1.0}},         // enum and const
		{"type": "a", "a": map[string]any{"n": 1.5}},         // not an integer
		{"type": "a", "a": map[string]any{}},                 // nested required
		{"type": "b", "b": []any{"x", 2.0}},                  // item type
		{"type": "b", "b": []any{}, "surprise": true},        // undeclared property
		{"type": "a", "a": map[string]any{"n": 1.0, "m": 2}}, // nested undeclared
	}
	for _, v := range invalid {
		if errs := spec.validate(schema, v, "$", none); len(errs) == 0 {
			t.Errorf("invalid %v accepted", v)
		}
	}
	if errs := spec.validate(schema, map[string]any{"type": "b", "b": []any{}, "surprise": true}, "$",
		func(p string) bool { return p == "$.surprise" }); len(errs) > 0 {
		t.Errorf("allow-listed property refused: %v", errs)
	}
}
