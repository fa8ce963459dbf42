package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/testenv"
)

// catalogUnder returns the catalog's entries with subjects moved under a
// prefix unique to this run, so runs against a shared registry do not meet.
func catalogUnder(t *testing.T) []registry.Entry {
	entries, err := registry.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("test%d.", time.Now().UnixNano())
	for i := range entries {
		entries[i].Subject = prefix + entries[i].Subject
	}
	return entries
}

// withRequiredField returns schema with a new required string property.
func withRequiredField(t *testing.T, schema []byte, name string) []byte {
	var m map[string]any
	if err := json.Unmarshal(schema, &m); err != nil {
		t.Fatal(err)
	}
	m["properties"].(map[string]any)[name] = map[string]any{"type": "string"}
	m["required"] = append(m["required"].([]any), name)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func find(entries []registry.Entry, subjectSuffix string) int {
	for i, e := range entries {
		if strings.HasSuffix(e.Subject, subjectSuffix) {
			return i
		}
	}
	return -1
}

// testRegistration registers the whole catalog, re-registers it (no new
// versions), checks it, then tries an incompatible change: check and
// register both name the event, the field and the rule; after the subject
// is set to NONE the change registers as version 2.
func testRegistration(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := registry.NewClient(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := catalogUnder(t)
	res, err := registry.Register(ctx, cl, entries, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range res {
		if r.Err != nil || r.Version != 1 || r.ID <= 0 {
			t.Errorf("%s: %+v", r.Entry.Subject, r)
		}
		ids[r.Entry.Subject] = r.ID
	}
	if len(res) != len(entries) {
		t.Fatalf("%d results for %d entries", len(res), len(entries))
	}
	// Every subject got the default level.
	for _, c := range cl.Compatibility(ctx, entries[0].Subject, entries[len(entries)-1].Subject) {
		if c.Err != nil || c.Level.String() != "BACKWARD" {
			t.Errorf("%s: level %v %v, want BACKWARD", c.Subject, c.Level, c.Err)
		}
	}
	again, err := registry.Register(ctx, cl, entries, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if r.Err != nil || r.Version != 1 || r.ID != ids[r.Entry.Subject] {
			t.Errorf("re-register %s: %+v, want version 1 id %d", r.Entry.Subject, r, ids[r.Entry.Subject])
		}
	}
	findings, err := registry.CheckRegistry(ctx, cl, entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if !f.OK() || f.Against == "" {
			t.Errorf("%s: %+v", f.Entry.Subject, f)
		}
	}

	i := find(entries, "eventmart.ShippingCreated.v1")
	changed := entries[i]
	changed.Schema = withRequiredField(t, changed.Schema, "region")
	findings, err = registry.CheckRegistry(ctx, cl, []registry.Entry{changed})
	if err != nil {
		t.Fatal(err)
	}
	f := findings[0]
	if f.OK() || len(f.Violations) != 1 || f.Note != "" {
		t.Fatalf("finding %+v, want one violation the registry agrees with", f)
	}
	v := f.Violations[0]
	if v.Field != "region" || v.Rule != "OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED" || v.Mode != registry.Backward || v.Version != 1 {
		t.Errorf("violation %+v", v)
	}
	line := f.Report()[0]
	for _, want := range []string{"ShippingCreated v1", `field "region"`, "a required property was added", "OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED", "BACKWARD"} {
		if !strings.Contains(line, want) {
			t.Errorf("report %q lacks %q", line, want)
		}
	}
	res, err = registry.Register(ctx, cl, []registry.Entry{changed}, "")
	if err != nil {
		t.Fatal(err)
	}
	var inc *registry.IncompatibleError
	if !errors.As(res[0].Err, &inc) || len(inc.Violations) != 1 || inc.Violations[0].Field != "region" {
		t.Fatalf("register the incompatible change: %+v", res[0])
	}
	if vs, err := cl.SubjectVersions(ctx, changed.Subject); err != nil || len(vs) != 1 {
		t.Errorf("versions after the refusal: %v %v", vs, err)
	}
	if r := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatNone}, changed.Subject); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	res, err = registry.Register(ctx, cl, []registry.Entry{changed}, "")
	if err != nil || res[0].Err != nil || res[0].Version != 2 {
		t.Fatalf("register under NONE: %+v %v", res, err)
	}
	ss, err := cl.SchemaByVersion(ctx, changed.Subject, 2)
	if err != nil || !strings.Contains(ss.Schema.Schema, "region") || ss.Type != sr.TypeJSON {
		t.Errorf("version 2 = %+v %v", ss, err)
	}
}

func TestRegistrationBuiltIn(t *testing.T) {
	st, err := registry.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.Handler(st, nil))
	t.Cleanup(srv.Close)
	testRegistration(t, srv.URL)
}

func TestRegistrationApicurio(t *testing.T) {
	testRegistration(t, testenv.Registry(t))
}

// The built-in registry survives a restart (it is a file) and is shared by
// two handles on one directory.
func TestBuiltInIsDurableAndShared(t *testing.T) {
	dir := t.TempDir()
	a, _ := registry.OpenStore(dir)
	b, _ := registry.OpenStore(dir)
	schema := `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`
	id, err := a.Register("s", schema, "JSON")
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Get("s", -1)
	if err != nil || v.ID != id || v.Version != 1 {
		t.Fatalf("other handle: %+v %v", v, err)
	}
	if _, err := b.Register("s", `{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],"additionalProperties":false}`, "JSON"); err == nil {
		t.Error("type change accepted under the default level")
	}
	if _, err := a.Register("s", schema, "AVRO"); err == nil {
		t.Error("AVRO accepted by a JSON-only registry")
	}
	if _, err := a.Register("s", "{not json", "JSON"); err == nil {
		t.Error("invalid JSON accepted")
	}
	if m, err := a.Config("s", true); err != nil || m != registry.Backward {
		t.Errorf("default level %v %v", m, err)
	}
}

func TestReadsDoNotWrite(t *testing.T) {
	dir := t.TempDir()
	st, _ := registry.OpenStore(dir)
	if subs, err := st.Subjects(); err != nil || len(subs) != 0 {
		t.Fatalf("%v %v", subs, err)
	}
	if _, err := os.Stat(st.Path()); !os.IsNotExist(err) {
		t.Errorf("a read created %s: %v", st.Path(), err)
	}
}
