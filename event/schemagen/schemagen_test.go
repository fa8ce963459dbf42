package schemagen_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/eventmart/eventmart/event/schemagen"
)

// The schemas in event/schemas are exactly what the payload types generate:
// change a payload, run `go generate ./event` (or eventmart schema gen),
// commit both.
func TestSchemasMatchPayloadTypes(t *testing.T) {
	all, err := schemagen.All()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../schemas/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		onDisk = append(onDisk, filepath.Base(f))
	}
	for name, want := range all {
		got, err := os.ReadFile(filepath.Join("../schemas", name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./event)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("event/schemas/%s differs from its payload type (run go generate ./event)", name)
		}
	}
	for _, n := range onDisk {
		if _, ok := all[n]; !ok {
			t.Errorf("event/schemas/%s belongs to no event type and version of the catalog", n)
		}
	}
	if len(all) < 28 {
		t.Errorf("only %d schemas", len(all))
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, want := range []string{"OrderCreated.v1.json", "OrderCreated.v2.json", "UserRegistered.v1.json"} {
		if _, ok := all[want]; !ok {
			t.Errorf("no %s among %v", want, names)
		}
	}
}
