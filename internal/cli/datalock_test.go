package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/fsperm"
)

// A second eventmart run on the data directory of a running one fails at
// once, naming the first one's pid and address; once the first stops, the
// directory is free again.
func TestSecondServerOnOneDataDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, []string{"run", "--data", dir, "--addr", "127.0.0.1:0"}, func(string) string { return "" }, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	first, err := bufio.NewReader(pr).ReadString('\n') // "eventmart listening on http://ADDR …"
	if err != nil {
		t.Fatalf("the first server did not start: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.Fields(strings.TrimPrefix(first, "eventmart listening on "))[0]

	start := time.Now()
	_, err = runCLI(t, nil, "run", "--data", dir, "--addr", "127.0.0.1:0")
	if !errors.Is(err, errDataInUse) {
		t.Fatalf("second run: err %v, want errDataInUse", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), "listening on " + addr, "--data"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second run took %s to fail", d)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	l, err := lockData(dir, "eventmart")
	if err != nil {
		t.Fatalf("the lock outlived the server: %v", err)
	}
	l.release()
}

// An address in use fails before anything starts, naming the setting.
func TestServeOnAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = runCLI(t, nil, "run", "--data", t.TempDir(), "--addr", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+ln.Addr().String()) || !strings.Contains(err.Error(), "--addr (EVENTMART_ADDR)") {
		t.Errorf("err = %v", err)
	}
}

// The lock file is made as private as the rest of the data directory, so
// the start's permission check has nothing to warn about in a directory
// Eventmart created.
func TestLockFileIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := lockData(dir, "eventmart")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	wide, n, err := fsperm.Wide(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("wider than private: %v", wide)
	}
}
