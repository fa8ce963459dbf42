package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaRef names one schema of the catalog.
type schemaRef struct {
	t Type
	v string
}

func catalogSchemas(t testing.TB) []schemaRef {
	t.Helper()
	var out []schemaRef
	for _, s := range Catalog() {
		for _, v := range s.Versions() {
			out = append(out, schemaRef{s.Type, v})
		}
	}
	if len(out) == 0 {
		t.Fatal("no schemas in the catalog")
	}
	return out
}

// libraryValid is the JSON Schema library's verdict, the last word.
func libraryValid(t testing.TB, r schemaRef, data []byte) bool {
	t.Helper()
	s, err := compiledSchema(r.t, r.v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return false
	}
	return s.Validate(inst) == nil
}

// instanceOf builds a value its schema accepts: every property (full) or
// the required ones alone, the first alternative of a oneOf, one item per
// array.
func instanceOf(doc map[string]any, full bool) any {
	if alts, ok := doc["oneOf"].([]any); ok {
		return instanceOf(alts[0].(map[string]any), full)
	}
	typ := ""
	switch ts := doc["type"].(type) {
	case string:
		typ = ts
	case []any:
		for _, x := range ts {
			if x != "null" {
				typ = x.(string)
				break
			}
		}
	}
	if typ == "" && doc["properties"] != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		props, _ := doc["properties"].(map[string]any)
		out := map[string]any{}
		if full {
			for name, sub := range props {
				out[name] = instanceOf(sub.(map[string]any), full)
			}
		} else {
			req, _ := doc["required"].([]any)
			for _, name := range req {
				out[name.(string)] = instanceOf(props[name.(string)].(map[string]any), full)
			}
		}
		return out
	case "array":
		if items, ok := doc["items"].(map[string]any); ok {
			return []any{instanceOf(items, full)}
		}
		return []any{}
	case "integer":
		return 7
	case "number":
		return 1.5
	case "boolean":
		return true
	case "null":
		return nil
	}
	if doc["format"] == "date-time" {
		return "2026-12-07T05:06:07.123456789+01:00"
	}
	return "x\u00e9\"y"
}

func instances(t testing.TB, r schemaRef) [][]byte {
	t.Helper()
	b, _ := Schema(r.t, r.v)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, full := range []bool{true, false} {
		data, err := json.Marshal(instanceOf(doc, full))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// TestQuickCheckFollowsEverySchema: every schema of the catalog uses only
// what the quick check follows, so no consumer pays for the library on a
// valid payload. A new keyword in a schema fails here: teach the quick
// check, or accept that the type goes to the library.
func TestQuickCheckFollowsEverySchema(t *testing.T) {
	for _, r := range catalogSchemas(t) {
		if quickSchemaOf(r.t, r.v) == nil {
			t.Errorf("%s %s: the quick check does not follow its schema", r.t, r.v)
		}
	}
}

// TestQuickCheckAcceptsValidPayloads: for every schema, a payload with
// every property and one with the required ones alone pass the quick
// check, as they pass the library.
func TestQuickCheckAcceptsValidPayloads(t *testing.T) {
	for _, r := range catalogSchemas(t) {
		for _, data := range instances(t, r) {
			if !libraryValid(t, r, data) {
				t.Fatalf("%s %s: the test's instance %s is not valid", r.t, r.v, data)
			}
			if !quickValid(quickSchemaOf(r.t, r.v), data) {
				t.Errorf("%s %s: quick check not sure of valid %s", r.t, r.v, data)
			}
		}
	}
}

// TestQuickCheckIsNotSureOf: invalid payloads, and valid ones in forms
// the quick check does not follow, go to the library — which answers
// each as before.
func TestQuickCheckIsNotSureOf(t *testing.T) {
	const product = `"productId":"p1","sku":"S","name":"N","currency":"EUR"`
	const customer = `{"userId":"u","email":%s,"name":"N"}`
	cases := []struct {
		name  string
		r     schemaRef
		data  string
		valid bool // the library's verdict
	}{
		{"missing required", schemaRef{"ProductCreated", "v1"}, `{` + product + `}`, false},
		{"unknown field", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1,"colour":"red"}`, false},
		{"string for an integer", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":"1"}`, false},
		{"fraction for an integer", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1.5}`, false},
		{"integer written with a fraction", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1.0}`, true},
		{"integer written with an exponent", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1e2}`, true},
		{"escaped key", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"price\u0043ents":1}`, true},
		{"required key twice", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1,"priceCents":2}`, true},
		{"trailing data", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1} x`, false},
		{"two values", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1}{}`, false},
		{"not an object", schemaRef{"ProductCreated", "v1"}, `[1]`, false},
		{"bad number", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":01}`, false},
		{"nothing", schemaRef{"ProductCreated", "v1"}, ``, false},
		{"invalid UTF-8", schemaRef{"ProductCreated", "v1"}, `{` + product + `,"priceCents":1,"name":"` + "\xff" + `"}`, false},
		{"oneOf: neither alternative", schemaRef{"OrderCreated", "v3"}, `{"customer":` + fmt.Sprintf(customer, `7`) + `}`, false},
		{"oneOf: sealed value without ct", schemaRef{"OrderCreated", "v3"}, `{"customer":` + fmt.Sprintf(customer, `{"enc":"a","kid":"k"}`) + `}`, false},
		{"date-time: leap second", schemaRef{"OrderCreated", "v3"}, `{"placedAt":"2016-12-31T23:59:60Z"}`, true},
		{"date-time: no zone", schemaRef{"OrderCreated", "v3"}, `{"placedAt":"2026-12-07T05:06:07"}`, false},
		{"date-time: 30 February", schemaRef{"OrderCreated", "v3"}, `{"placedAt":"2026-02-30T05:06:07Z"}`, false},
		{"date-time: lower-case", schemaRef{"OrderCreated", "v3"}, `{"placedAt":"2026-12-07t05:06:07z"}`, true},
	}
	for _, c := range cases {
		data := []byte(c.data)
		if c.r.t == "OrderCreated" {
			data = withOrderCreated(t, c.data)
		}
		if quickValid(quickSchemaOf(c.r.t, c.r.v), data) {
			t.Errorf("%s: quick check sure of %s", c.name, data)
		}
		if c.name == "invalid UTF-8" {
			continue // the library's verdict is not this test's concern
		}
		if got := libraryValid(t, c.r, data); got != c.valid {
			t.Errorf("%s: library says valid %v, the test expects %v (%s)", c.name, got, c.valid, data)
		}
		if err := ValidatePayload(c.r.t, c.r.v, data); (err == nil) != c.valid {
			t.Errorf("%s: ValidatePayload = %v, want valid %v", c.name, err, c.valid)
		}
	}
}

// withOrderCreated is a valid OrderCreated v3 with the fields of patch (a
// JSON object) in place of its own.
func withOrderCreated(t *testing.T, patch string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(instances(t, schemaRef{"OrderCreated", "v3"})[0], &m); err != nil {
		t.Fatal(err)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(patch), &p); err != nil {
		t.Fatal(err)
	}
	for k, v := range p {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzQuickCheckIsSound: whatever the payload, the quick check is sure
// of it only when the library finds it valid.
func FuzzQuickCheckIsSound(f *testing.F) {
	refs := catalogSchemas(f)
	for i, r := range refs {
		for _, data := range instances(f, r) {
			f.Add(uint16(i), data)
		}
	}
	f.Fuzz(func(t *testing.T, i uint16, data []byte) {
		r := refs[int(i)%len(refs)]
		if quickValid(quickSchemaOf(r.t, r.v), data) && !libraryValid(t, r, data) {
			t.Fatalf("%s %s: quick check sure of %q, which the library refuses", r.t, r.v, data)
		}
	})
}
