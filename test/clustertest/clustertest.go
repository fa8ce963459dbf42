// Package clustertest holds what the tests that run Eventmart on a cluster
// of its own (deploy/scripts/cluster.sh: test/chaos, test/monitoring)
// share: free ports, the cluster's environment file, and polling for a
// condition.
package clustertest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreeRange finds n consecutive free ports in 20000–32767: below Linux's
// ephemeral range (32768–60999), so that no outgoing connection takes one
// while a process of the cluster is down.
func FreeRange(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := 20000 + rand.IntN((32768-20000-n)/10)*10
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no range of free ports")
	return 0
}

// ReadEnv reads the `export K=V` lines of cluster.sh's cluster.env.
func ReadEnv(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			out[k] = strings.Trim(v, "'")
		}
	}
	return out
}

// WaitFor polls cond every 500 ms until it holds, logging each new reason
// it gives for not holding, and fails the test with the last reason once
// timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		if why != last {
			t.Logf("waiting for %s: %s", what, why)
			last = why
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s: %s", what, timeout, why)
		}
		time.Sleep(500 * time.Millisecond) // polling interval
	}
}

// RunDir makes a fresh directory for one run of a test that starts
// servers, under the repository's .run (kept after the test, for its logs),
// and returns the repository's root and that directory. The test's package
// lies two levels below the root (test/<name>).
func RunDir(t testing.TB, prefix string) (repo, dir string) {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, ".run"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp(filepath.Join(repo, ".run"), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return repo, dir
}
