package fsperm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/fsperm"
)

func TestCreateAndWide(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db := filepath.Join(dir, "sub", "x.db")
	if err := fsperm.Create(db); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(db): 0o700, db: 0o600} {
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", path, info.Mode().Perm(), err, want)
		}
	}
	os.WriteFile(db, []byte("kept"), 0o600)
	if err := fsperm.Create(db); err != nil { // exists: untouched
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(db); string(b) != "kept" {
		t.Errorf("Create truncated an existing file: %q", b)
	}
	if paths, n, err := fsperm.Wide(dir); err != nil || n != 0 {
		t.Errorf("fresh: %v %d %v, want none", paths, n, err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(db, 0o644)
	paths, n, err := fsperm.Wide(dir)
	if err != nil || n != 2 || !strings.Contains(strings.Join(paths, " "), "x.db (-rw-r--r--)") {
		t.Errorf("widened: %v %d %v, want the dir and x.db", paths, n, err)
	}
	if _, n, err := fsperm.Wide(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Errorf("missing dir: %d %v", n, err)
	}
}
