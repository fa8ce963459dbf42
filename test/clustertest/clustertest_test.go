package clustertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RunDir makes a new directory under the repository's .run, named by its
// prefix, and names the repository's root (where go.mod is).
func TestRunDir(t *testing.T) {
	repo, dir := RunDir(t, "clustertest-")
	t.Cleanup(func() { os.RemoveAll(dir) })
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		t.Errorf("repo %s: %v", repo, err)
	}
	if filepath.Dir(dir) != filepath.Join(repo, ".run") || !strings.HasPrefix(filepath.Base(dir), "clustertest-") {
		t.Errorf("dir %s is not a clustertest- directory under %s/.run", dir, repo)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("dir %s: %v", dir, err)
	}
	_, again := RunDir(t, "clustertest-")
	t.Cleanup(func() { os.RemoveAll(again) })
	if again == dir {
		t.Error("two runs got the same directory")
	}
}
