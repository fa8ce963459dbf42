package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/testenv"
)

// A corpus of schema changes with the verdict of every compatibility level.
// The same corpus runs against the built-in registry and against Apicurio
// Registry (EVENTMART_TEST_REGISTRY): both must give the expected verdict,
// so they agree on every case and every level.

// obj builds a closed object schema: props "name:schema" pairs, required names.
func obj(closed bool, required []string, props ...string) string {
	var ps []string
	for i := 0; i+1 < len(props); i += 2 {
		ps = append(ps, fmt.Sprintf("%q:%s", props[i], props[i+1]))
	}
	var req []string
	for _, r := range required {
		req = append(req, fmt.Sprintf("%q", r))
	}
	add := ""
	if closed {
		add = `,"additionalProperties":false`
	}
	return fmt.Sprintf(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{%s},"required":[%s]%s}`,
		strings.Join(ps, ","), strings.Join(req, ","), add)
}

const (
	str     = `{"type":"string"}`
	integer = `{"type":"integer"}`
)

var req = func(names ...string) []string { return names }

// pair is a change from old to new with its BACKWARD and FORWARD verdicts;
// FULL is both, NONE always passes, and with one earlier version the
// transitive levels agree with the plain ones.
type pair struct {
	name          string
	old, new      string
	backward, fwd bool
}

var pairs = []pair{
	{"identical", obj(true, req("a"), "a", str), obj(true, req("a"), "a", str), true, true},
	{"add optional field", obj(true, req("a"), "a", str), obj(true, req("a"), "a", str, "b", str), true, false},
	{"add required field", obj(true, req("a"), "a", str), obj(true, req("a", "b"), "a", str, "b", str), false, false},
	{"remove optional field", obj(true, req("a"), "a", str, "b", str), obj(true, req("a"), "a", str), false, true},
	{"remove required field", obj(true, req("a", "b"), "a", str, "b", str), obj(true, req("a"), "a", str), false, false},
	{"make field required", obj(true, req("a"), "a", str, "b", str), obj(true, req("a", "b"), "a", str, "b", str), false, true},
	{"make field optional", obj(true, req("a", "b"), "a", str, "b", str), obj(true, req("a"), "a", str, "b", str), true, false},
	{"change type string to integer", obj(true, req("a"), "a", str), obj(true, req("a"), "a", integer), false, false},
	{"widen integer to number", obj(true, req("a"), "a", integer), obj(true, req("a"), "a", `{"type":"number"}`), true, false},
	{"add enum value", obj(true, req("a"), "a", `{"type":"string","enum":["x","y"]}`), obj(true, req("a"), "a", `{"type":"string","enum":["x","y","z"]}`), true, false},
	{"remove enum value", obj(true, req("a"), "a", `{"type":"string","enum":["x","y","z"]}`), obj(true, req("a"), "a", `{"type":"string","enum":["x","y"]}`), false, true},
	{"add maxLength", obj(true, req("a"), "a", str), obj(true, req("a"), "a", `{"type":"string","maxLength":10}`), false, true},
	{"raise maxLength", obj(true, req("a"), "a", `{"type":"string","maxLength":10}`), obj(true, req("a"), "a", `{"type":"string","maxLength":20}`), true, false},
	{"raise minLength", obj(true, req("a"), "a", `{"type":"string","minLength":1}`), obj(true, req("a"), "a", `{"type":"string","minLength":3}`), false, true},
	{"add minimum", obj(true, req("n"), "n", integer), obj(true, req("n"), "n", `{"type":"integer","minimum":0}`), false, true},
	{"lower minimum", obj(true, req("n"), "n", `{"type":"integer","minimum":5}`), obj(true, req("n"), "n", `{"type":"integer","minimum":0}`), true, false},
	{"lower maximum", obj(true, req("n"), "n", `{"type":"integer","maximum":100}`), obj(true, req("n"), "n", `{"type":"integer","maximum":50}`), false, true},
	{"add pattern", obj(true, req("a"), "a", str), obj(true, req("a"), "a", `{"type":"string","pattern":"^[A-Z]+$"}`), false, true},
	{"add format", obj(true, req("a"), "a", str), obj(true, req("a"), "a", `{"type":"string","format":"date-time"}`), false, true},
	{"open a closed object", obj(true, req("a"), "a", str), obj(false, req("a"), "a", str), true, false},
	{"close an open object", obj(false, req("a"), "a", str), obj(true, req("a"), "a", str), false, true},
	{"add optional field to an open object", obj(false, req("a"), "a", str), obj(false, req("a"), "a", str, "b", str), false, true},
	{"remove field from an open object", obj(false, req("a"), "a", str, "b", str), obj(false, req("a"), "a", str), true, false},
	{"add required field in a nested object", obj(true, req("c"), "c", obj(true, req("x"), "x", str)), obj(true, req("c"), "c", obj(true, req("x", "y"), "x", str, "y", str)), false, false},
	{"add optional field in a nested object", obj(true, req("c"), "c", obj(true, req("x"), "x", str)), obj(true, req("c"), "c", obj(true, req("x"), "x", str, "y", str)), true, false},
	{"change array item type", obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"}}`), obj(true, req("l"), "l", `{"type":"array","items":{"type":"integer"}}`), false, false},
	{"add maxItems", obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"}}`), obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"},"maxItems":3}`), false, true},
	{"require unique items", obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"}}`), obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"},"uniqueItems":true}`), false, true},
	{"make a string nullable", obj(true, req("a"), "a", str), obj(true, req("a"), "a", `{"type":["string","null"]}`), true, false},
	{"make an integer nullable", obj(true, req("n"), "n", integer), obj(true, req("n"), "n", `{"type":["integer","null"]}`), false, false},
	{"drop null from a nullable array", obj(true, req("l"), "l", `{"type":["array","null"],"items":{"type":"string"}}`), obj(true, req("l"), "l", `{"type":"array","items":{"type":"string"}}`), false, false},
	{"add field to a nullable array's items", obj(true, req("l"), "l", `{"type":["array","null"],"items":`+obj(true, req("p"), "p", str)+`}`),
		obj(true, req("l"), "l", `{"type":["array","null"],"items":`+obj(true, req("p"), "p", str, "q", integer)+`}`), true, false},
}

// chain: earlier versions registered under NONE, then the level set and a
// candidate tried: the transitive levels look past the latest version.
type chain struct {
	name      string
	versions  []string
	candidate string
	want      map[registry.Mode]bool
}

var chains = []chain{
	{
		name:      "compatible with the latest only (backward)",
		versions:  []string{obj(true, req("a", "b"), "a", str, "b", str), obj(true, req("a"), "a", str)},
		candidate: obj(true, req("a"), "a", str, "c", str),
		want: map[registry.Mode]bool{registry.Backward: true, registry.BackwardTransitive: false, registry.Forward: false,
			registry.ForwardTransitive: false, registry.Full: false, registry.FullTransitive: false, registry.None: true},
	},
	{
		name:      "compatible with the latest only (forward)",
		versions:  []string{obj(true, req("a"), "a", str), obj(true, req("a"), "a", str, "x", str)},
		candidate: obj(true, req("a"), "a", str, "x", `{"type":"string","maxLength":10}`),
		want: map[registry.Mode]bool{registry.Backward: false, registry.BackwardTransitive: false, registry.Forward: true,
			registry.ForwardTransitive: false, registry.Full: false, registry.FullTransitive: false, registry.None: true},
	},
	{
		name:      "compatible with the latest only (full)",
		versions:  []string{obj(true, req("a"), "a", str, "b", str), obj(true, req("a"), "a", str)},
		candidate: strings.Replace(obj(true, req("a"), "a", str), `"type":"object"`, `"type":"object","description":"v3"`, 1),
		want: map[registry.Mode]bool{registry.Backward: true, registry.BackwardTransitive: false, registry.Forward: true,
			registry.ForwardTransitive: true, registry.Full: true, registry.FullTransitive: false, registry.None: true},
	},
}

func (p pair) want(m registry.Mode) bool {
	switch m {
	case registry.Backward, registry.BackwardTransitive:
		return p.backward
	case registry.Forward, registry.ForwardTransitive:
		return p.fwd
	case registry.Full, registry.FullTransitive:
		return p.backward && p.fwd
	}
	return true
}

var seq atomic.Int64

// runCorpus runs every case under every level against the registry at url.
func runCorpus(t *testing.T, url string) {
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	run := ""
	if testing.Short() {
		run = "short"
	}
	stamp := time.Now().UnixNano()
	for _, mode := range registry.Modes {
		for _, p := range pairs {
			t.Run(string(mode)+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				try(t, cl, fmt.Sprintf("corpus-%d-%d%s", stamp, seq.Add(1), run), mode, []string{p.old}, p.new, p.want(mode), true)
			})
		}
		for _, c := range chains {
			t.Run(string(mode)+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				try(t, cl, fmt.Sprintf("corpus-%d-%d%s", stamp, seq.Add(1), run), mode, c.versions, c.candidate, c.want[mode], false)
			})
		}
	}
}

func try(t *testing.T, cl *sr.Client, subject string, mode registry.Mode, versions []string, candidate string, want, checkEndpoint bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setLevel(ctx, t, cl, subject, registry.None)
	for i, v := range versions {
		if _, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: v, Type: sr.TypeJSON}, -1, -1); err != nil {
			t.Fatalf("register version %d under NONE: %v", i+1, err)
		}
	}
	setLevel(ctx, t, cl, subject, mode)
	if checkEndpoint {
		res, err := cl.CheckCompatibility(ctx, subject, -1, sr.Schema{Schema: candidate, Type: sr.TypeJSON})
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if res.Is != want {
			t.Errorf("%s: compatibility check says %v, want %v (messages %v)", mode, res.Is, want, res.Messages)
		}
	}
	_, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: candidate, Type: sr.TypeJSON}, -1, -1)
	var re *sr.ResponseError
	switch {
	case want && err != nil:
		t.Errorf("%s: register refused: %v, want accepted", mode, err)
	case !want && err == nil:
		t.Errorf("%s: register accepted, want refused as incompatible", mode)
	case !want && (!errors.As(err, &re) || re.StatusCode != 409):
		t.Errorf("%s: register failed with %v, want HTTP 409", mode, err)
	}
}

func setLevel(ctx context.Context, t *testing.T, cl *sr.Client, subject string, m registry.Mode) {
	t.Helper()
	res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: level(t, m)}, subject)
	if res[0].Err != nil {
		t.Fatalf("set %s to %s: %v", subject, m, res[0].Err)
	}
}

func level(t *testing.T, m registry.Mode) sr.CompatibilityLevel {
	var l sr.CompatibilityLevel
	if err := l.UnmarshalText([]byte(m)); err != nil {
		t.Fatalf("level %s: %v", m, err)
	}
	return l
}

func TestCorpusBuiltIn(t *testing.T) {
	st, err := registry.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.Handler(st, nil))
	t.Cleanup(srv.Close)
	runCorpus(t, srv.URL)
}

func TestCorpusApicurio(t *testing.T) {
	runCorpus(t, testenv.Registry(t))
}
