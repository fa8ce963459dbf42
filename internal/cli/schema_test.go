package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/testenv"
)

// A user's walk: register the catalog, check (all compatible), then a
// registered schema that the repository's no longer matches: check fails
// naming the event, the field and the rule, and so does register.
func schemaWalk(t *testing.T, flags ...string) {
	out, err := runCLI(t, nil, append([]string{"schema", "register"}, flags...)...)
	if err != nil || !strings.Contains(out, "0 refused") {
		t.Fatalf("register: %v\n%s", err, out)
	}
	out, err = runCLI(t, nil, append([]string{"schema", "check"}, flags...)...)
	if err != nil || !strings.Contains(out, "0 incompatible") {
		t.Fatalf("check: %v\n%s", err, out)
	}
}

func TestSchemaCheckBuiltIn(t *testing.T) {
	dir := t.TempDir()
	schemaWalk(t, "--data", dir)

	// Someone registered ShippingCreated v1 with a field "region" the
	// repository's schema lacks: removing a field from a closed schema is
	// not BACKWARD compatible.
	st, err := registry.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	subject := registry.Subject("ShippingCreated", "v1")
	b, _ := event.Schema("ShippingCreated", "v1")
	var m map[string]any
	json.Unmarshal(b, &m)
	m["properties"].(map[string]any)["region"] = map[string]any{"type": "string"}
	withRegion, _ := json.Marshal(m)
	if _, err := st.Register(subject, string(withRegion), "JSON"); err != nil {
		t.Fatal(err) // adding an optional field is compatible
	}
	out, err := runCLI(t, nil, "schema", "check", "--data", dir)
	if err == nil {
		t.Fatalf("check passed:\n%s", out)
	}
	for _, want := range []string{"INCOMPATIBLE ShippingCreated v1", "subject eventmart.ShippingCreated.v1", `field "region"`,
		"OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED", "BACKWARD", "1 incompatible"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// Registering again is a no-op: the repository's schema is version 1
	// of the subject already (as in Confluent's API, a schema registered
	// before is not checked again).
	if out, err = runCLI(t, nil, "schema", "register", "--data", dir); err != nil || !strings.Contains(out, "0 refused") {
		t.Errorf("register: %v\n%s", err, out)
	}
	if _, err := runCLI(t, nil, "schema", "check", "--against", "git:HEAD"); err != nil {
		t.Errorf("the committed schemas against HEAD: %v", err)
	}
	if _, err := runCLI(t, nil, "schema", "check", "--against", "HEAD"); err == nil {
		t.Error("--against without git: accepted")
	}
	if _, err := runCLI(t, nil, "schema", "register", "--compatibility", "SIDEWAYS", "--data", dir); err == nil {
		t.Error("unknown level accepted")
	}
}

func TestSchemaCheckApicurio(t *testing.T) {
	schemaWalk(t, "--registry", testenv.Registry(t))
}
