package httpx_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
)

// TestDecodeStrict replays issue #16's finding: form and text bodies were
// taken as JSON, field names matched in any case and a duplicate key
// silently won.
func TestDecodeStrict(t *testing.T) {
	type extra struct {
		Tag string `json:"tag"`
	}
	type body struct {
		extra
		Name  string            `json:"name"`
		Items []fuzzLine        `json:"items"`
		Attrs map[string]string `json:"attrs"`
		Raw   json.RawMessage   `json:"raw"`
	}
	for _, tc := range []struct {
		name, contentType, body string
		code, message           string // code "" : accepted
	}{
		{"json", "application/json", `{"name":"x","tag":"t","items":[{"productId":"p","quantity":1}],"attrs":{"a":"b"},"raw":{"A":1}}`, "", ""},
		{"white space", "application/json", " {\n \"name\" : \"x\" ,\t\"items\" : [ { \"quantity\" : 1 } , {\"quantity\":-2} ] , \"attrs\":{ } , \"raw\" : [true,null,-1.5e3,\"}\"] }\n", "", ""},
		{"escaped key", "application/json", `{"n\u0061me":"x"}`, "", ""},
		{"escaped duplicate", "application/json", `{"name":"a","n\u0061me":"b"}`, eventmart.EINVALID, `duplicate field "name"`},
		{"escaped quote in a value", "application/json", `{"name":"a\"b\\","tag":"t"}`, "", ""},
		{"json with charset", "application/json; charset=utf-8", `{"name":"x"}`, "", ""},
		{"problem+json", "application/merge-patch+json", `{"name":"x"}`, "", ""},
		{"text/plain", "text/plain", `{"name":"x"}`, eventmart.EMEDIATYPE, "Content-Type must be application/json, not text/plain"},
		{"form", "application/x-www-form-urlencoded", `name=x`, eventmart.EMEDIATYPE, "Content-Type must be application/json"},
		{"no content type", "", `{"name":"x"}`, eventmart.EMEDIATYPE, "not none"},
		{"upper-case top-level name", "application/json", `{"NAME":"x"}`, eventmart.EINVALID, `unknown field "NAME"; did you mean "name"?`},
		{"upper-case nested name", "application/json", `{"items":[{"PRODUCTID":"p"}]}`, eventmart.EINVALID, `unknown field "PRODUCTID"; did you mean "productId"?`},
		{"upper-case promoted name", "application/json", `{"Tag":"t"}`, eventmart.EINVALID, `unknown field "Tag"`},
		{"duplicate key", "application/json", `{"name":"a","name":"b"}`, eventmart.EINVALID, `duplicate field "name"`},
		{"duplicate nested key", "application/json", `{"items":[{"quantity":1,"quantity":2}]}`, eventmart.EINVALID, `duplicate field "quantity"`},
		{"duplicate map key", "application/json", `{"attrs":{"a":"1","a":"2"}}`, eventmart.EINVALID, `duplicate field "a"`},
		{"duplicate key in raw JSON", "application/json", `{"raw":{"a":1,"a":2}}`, eventmart.EINVALID, `duplicate field "a"`},
		{"case variants of each other", "application/json", `{"name":"a","Name":"b"}`, eventmart.EINVALID, `unknown field "Name"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			var v body
			err := httpx.Decode(r, &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if eventmart.ErrorCode(err) != tc.code || !strings.Contains(eventmart.ErrorMessage(err), tc.message) {
				t.Fatalf("error %v, want %s containing %q", err, tc.code, tc.message)
			}
		})
	}
}

// TestErrorStatuses checks the statuses of the codes strict input adds,
// and that JSON answers are marked nosniff and no-store.
func TestErrorStatuses(t *testing.T) {
	for code, want := range map[string]int{eventmart.ETOOLARGE: 413, eventmart.EMEDIATYPE: 415, eventmart.EUNPROCESSABLE: 422} {
		w := httptest.NewRecorder()
		httpx.Error(w, httptest.NewRequest("POST", "/", nil), eventmart.Errorf(code, "x"))
		if w.Code != want {
			t.Errorf("%s: status %d, want %d", code, w.Code, want)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v, want nosniff and no-store", code, w.Header())
		}
	}
	w := httptest.NewRecorder()
	rep, _ := httpx.Represent(map[string]int{"a": 1})
	rep.Write(w, httptest.NewRequest("GET", "/", nil), http.StatusOK)
	if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("representation: headers %v, want nosniff and no-store", w.Header())
	}
}

// BenchmarkDecode is the cost of reading an order-sized body: the strict
// checks walk its tokens a second time.
func BenchmarkDecode(b *testing.B) {
	body := []byte(validBody)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var v fuzzBody
		if err := httpx.Decode(r, &v); err != nil {
			b.Fatal(err)
		}
	}
}
