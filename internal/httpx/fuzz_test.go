package httpx_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
)

// fuzzAddress and fuzzBody are representative of the request bodies the
// services declare: strings, numbers, a nested struct, a slice and
// pointer fields for optional (PATCH-style) values.
type fuzzAddress struct {
	Line1      string `json:"line1"`
	PostalCode string `json:"postalCode"`
}

type fuzzLine struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

type fuzzBody struct {
	Name       string       `json:"name"`
	PriceCents int64        `json:"priceCents"`
	Quantity   int          `json:"quantity"`
	Active     bool         `json:"active"`
	Address    fuzzAddress  `json:"address"`
	Items      []fuzzLine   `json:"items"`
	Note       *string      `json:"note"`
	Limit      *int         `json:"limit"`
	Shipping   *fuzzAddress `json:"shipping"`
}

const validBody = `{"name":"Widget","priceCents":1250,"quantity":2,"active":true,"address":{"line1":"12 St James's Square","postalCode":"SW1Y 4JH"},` +
	`"items":[{"productId":"p1","quantity":1},{"productId":"p2","quantity":3}],"note":"hi","limit":5,"shipping":{"line1":"x","postalCode":"y"}}`

// FuzzDecode checks that Decode never panics, fails only with EINVALID,
// and never accepts unknown fields or trailing data.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		validBody,
		`{}`,
		// Truncated.
		validBody[:len(validBody)/2],
		validBody[:len(validBody)-1],
		"", "{", " ",
		// Wrong types.
		`{"name":1}`, `{"priceCents":"1"}`, `{"priceCents":1.5}`, `{"quantity":1e100}`,
		`{"items":{}}`, `{"address":[]}`, `{"note":5}`, `{"active":"true"}`,
		`[]`, `null`, `"x"`, `42`, `true`,
		// Unknown fields, top-level and nested; case variants.
		`{"extra":1}`, `{"address":{"line2":"x"}}`, `{"items":[{"sku":"x"}]}`, `{"NAME":"x","Items":[]}`,
		// Trailing data.
		validBody + `{}`, validBody + ` x`, validBody + "\n", `{}}`, `{}]`, `{} ]`, `{}{}`, `{} 1`, `{}"x"`,
		// Huge strings and numbers.
		`{"name":"` + strings.Repeat("a", 4<<10) + `"}`,
		`{"priceCents":` + strings.Repeat("9", 400) + `}`,
		// Non-UTF-8.
		"{\"name\":\"\xff\xfe\"}", "\xef\xbb\xbf{}", "{\"na\xffme\":1}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		var v fuzzBody
		err := httpx.Decode(r, &v)
		if err != nil {
			if code := eventmart.ErrorCode(err); code != eventmart.EINVALID && (code != eventmart.ETOOLARGE || len(b) <= httpx.MaxBody) {
				t.Fatalf("Decode(%q) failed with code %q, want %q: %v", b, code, eventmart.EINVALID, err)
			}
			return
		}
		if len(b) > httpx.MaxBody {
			t.Fatalf("Decode accepted a %d-byte body, more than MaxBody", len(b))
		}
		// Accepted: the document is one JSON value followed by nothing but
		// white space.
		dec := json.NewDecoder(bytes.NewReader(b))
		var first json.RawMessage
		if err := dec.Decode(&first); err != nil {
			t.Fatalf("Decode accepted %q, which does not start with a JSON value: %v", b, err)
		}
		if trailing := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(trailing) > 0 {
			t.Fatalf("Decode accepted %q with trailing data %q", b, trailing)
		}
		// Accepted: every key names a field, in its exact case.
		var doc any
		if err := json.Unmarshal(first, &doc); err != nil {
			t.Fatalf("Decode accepted %q, which does not unmarshal: %v", b, err)
		}
		if bad := unknownKey(doc, reflect.TypeOf(v)); bad != "" {
			t.Fatalf("Decode accepted %q with unknown field %q", b, bad)
		}
	})
}

// TestDecodeMaxBody covers the size limit, whose inputs are too large to
// be fuzzing seeds: a body of MaxBody bytes is read, a longer one is
// ETOOLARGE (413), whether or not its length is announced.
func TestDecodeMaxBody(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{httpx.MaxBody, true}, {httpx.MaxBody + 1, false}} {
		body := `{"name":"` + strings.Repeat("a", tc.size-len(`{"name":""}`)) + `"}`
		for _, announced := range []bool{true, false} {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if !announced {
				r.ContentLength = -1
			}
			var v fuzzBody
			err := httpx.Decode(r, &v)
			if tc.ok && err != nil {
				t.Errorf("%d bytes: %v", tc.size, err)
			}
			if !tc.ok && eventmart.ErrorCode(err) != eventmart.ETOOLARGE {
				t.Errorf("%d bytes (length announced: %v): error %v, want ETOOLARGE", tc.size, announced, err)
			}
		}
	}
}

// unknownKey returns a key of doc that is no field of t, or "".
func unknownKey(doc any, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d := doc.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return ""
		}
		for k, val := range d {
			f, ok := fieldOf(t, k)
			if !ok {
				return k
			}
			if bad := unknownKey(val, f.Type); bad != "" {
				return k + "." + bad
			}
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return ""
		}
		for _, val := range d {
			if bad := unknownKey(val, t.Elem()); bad != "" {
				return bad
			}
		}
	}
	return ""
}

func fieldOf(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
