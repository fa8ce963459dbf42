package cep_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/stream/cep"
)

func TestStandardRulesDocumentMatchesGo(t *testing.T) {
	data, err := os.ReadFile("testdata/standard-rules.json")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := cep.ParseRules(data)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, _ := json.Marshal(rules)
	fromGo, _ := json.Marshal(cep.StandardRules(24 * time.Hour))
	if string(fromFile) != string(fromGo) {
		t.Errorf("testdata/standard-rules.json:\n%s\nStandardRules(24h):\n%s", fromFile, fromGo)
	}
	if err := cep.Validate(cep.StandardRules(time.Hour)); err != nil {
		t.Error(err)
	}
}

func TestValidationErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // "path: problem" fragments, in order
	}{
		{"not JSON", `{"rules": [`, []string{"document: "}},
		{"no rules", `{}`, []string{"rules: missing"}},
		{"unknown field", `{"rules": [{"name": "x", "kind": "count", "within": "1m", "count": 2, "first": {"eventType": "A", "key": "k"}, "treshold": 3}]}`,
			[]string{`rules[0]: json: unknown field "treshold"`}},
		{"bad duration", `{"rules": [{"name": "x", "kind": "count", "within": "ten minutes", "count": 2, "first": {"eventType": "A", "key": "k"}}]}`,
			[]string{`rules[0]: time: invalid duration "ten minutes"`}},
		{"everything wrong", `{"rules": [
			{"name": "a", "kind": "count", "within": "0s", "count": 1, "first": {"key": "a..b"}, "then": [{"eventType": "B", "key": "k"}]},
			{"name": "a", "kind": "eventually", "within": "1m", "first": {"eventType": "A", "key": "k", "holder": "h",
			 "where": [{"path": "x", "op": "like", "value": 1}, {"path": "", "op": "lt", "value": true}, {"path": "y", "op": "eq"}]}},
			{"name": "b", "kind": "whileHeld", "within": "1m", "first": {"eventType": "A", "key": "k"}}
		]}`, []string{
			`rules[0].within: must be a positive duration, got "0s"`,
			`rules[0].count: must be at least 2, got 1`,
			`rules[0].then: a count rule has no then steps`,
			`rules[0].first.eventType: missing`,
			`rules[0].first.key: "a..b" is not a dotted path`,
			`rules[1].name: "a" is also the name of rules[0]`,
			`rules[1].kind: unknown kind "eventually"`,
			`rules[1].first.holder: only for the first step of a whileHeld rule`,
			`rules[1].first.where[0].op: unknown op "like"`,
			`rules[1].first.where[1].path: missing`,
			`rules[1].first.where[1].value: op "lt" compares numbers or strings, not a bool`,
			`rules[1].first.where[2].value: missing`,
			`rules[2].then: a whileHeld rule needs at least one step`,
			`rules[2].first.holder: missing`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cep.ParseRules([]byte(tc.doc))
			var ve cep.ValidationErrors
			if !errors.As(err, &ve) || !errors.Is(err, cep.ErrInvalidRules) {
				t.Fatalf("err = %v, want ValidationErrors", err)
			}
			if len(ve) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%s", len(ve), len(tc.want), strings.ReplaceAll(err.Error(), "; ", "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(ve[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, ve[i].Error(), w)
				}
			}
		})
	}
}
