package registry_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/registry"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
}

// schema check --against git:REV: the schemas committed at REV are the
// registered ones; a changed, a new and a removed schema are told apart.
func TestCheckAgainstAGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	schemas := filepath.Join(dir, "event", "schemas")
	os.MkdirAll(schemas, 0o755)
	entries, _ := registry.Catalog()
	for _, e := range entries[:3] {
		os.WriteFile(filepath.Join(schemas, event.SchemaFile(e.Type, e.Version)), e.Schema, 0o644)
	}
	os.WriteFile(filepath.Join(schemas, "Gone.v1.json"), []byte(`{"type":"object"}`), 0o644)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-qm", "schemas")

	old, err := registry.GitSchemas(context.Background(), filepath.Join(dir, "event"), "HEAD") // from a subdirectory too
	if err != nil || len(old) != 4 {
		t.Fatalf("GitSchemas: %d files, %v", len(old), err)
	}
	changed := append([]registry.Entry(nil), entries...)
	changed[0].Schema = withRequiredField(t, changed[0].Schema, "extra")
	findings, err := registry.CheckAgainst(changed, old, "git:HEAD", registry.Backward)
	if err != nil {
		t.Fatal(err)
	}
	var bad, fresh, fine int
	for _, f := range findings {
		switch {
		case !f.OK():
			bad++
		case f.Against == "":
			fresh++
		default:
			fine++
		}
	}
	if bad != 2 || fine != 2 || fresh != len(entries)-3 {
		t.Errorf("bad %d fine %d new %d of %d", bad, fine, fresh, len(findings))
	}
	report := strings.Join(append(findings[0].Report(), findings[len(findings)-1].Report()...), "\n")
	for _, want := range []string{`field "extra"`, "OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED", "against git:HEAD", "Gone v1", "was removed"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if _, err := registry.GitSchemas(context.Background(), dir, "no-such-rev"); err == nil {
		t.Error("unknown revision accepted")
	}
}
