// Package e2e tests Eventmart end to end, as users run it: the eventmart
// binary is built and started — one `eventmart run` process on the
// embedded log, or every service as its own `eventmart serve` process on
// real Kafka and PostgreSQL — and driven through the public HTTP API.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/cli"
)

// binary is the eventmart binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventmart-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "eventmart")
	build := exec.Command("go", "build", "-race", "-o", binary, "github.com/eventmart/eventmart/cmd/eventmart")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	adminEmail    = "admin@eventmart.test"
	adminPassword = "correct horse battery staple"
	timeout       = 60 * time.Second
)

// proc is a running eventmart process.
type proc struct {
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  string
	addr string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(binary, p.args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitReady(t, p)
}

// waitReady polls /readyz until the process answers 200.
func waitReady(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) || (p.cmd.ProcessState != nil) {
			t.Fatalf("%s not ready at %s: %v\n%s", p.name, p.addr, err, tail(p.log))
		}
		time.Sleep(20 * time.Millisecond) // polling a server that is starting up
	}
}

// stop sends SIGTERM and waits; it fails the test on a non-zero exit.
func (p *proc) stop(t *testing.T) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, tail(p.log))
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 30s of SIGTERM\n%s", p.name, tail(p.log))
	}
	p.cmd = nil
}

// kill sends SIGKILL: no graceful anything.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// system is a running Eventmart with its gateway at base.
type system struct {
	t     *testing.T
	base  string
	procs map[string]*proc
	mode  string
}

func (s *system) stopAll() {
	for _, p := range s.procs {
		p.stop(s.t)
	}
}

// call sends a request to the gateway and returns status, headers and
// body; a transport error fails the test.
func (s *system) call(method, path, token string, body any, hdr ...string) (int, http.Header, []byte) {
	s.t.Helper()
	status, h, b, err := s.send(method, path, token, body, hdr...)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, h, b
}

// send is call that returns a transport error instead of failing.
func (s *system) send(method, path, token string, body any, hdr ...string) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.base+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// must sends a request, requires status want and decodes into out.
func (s *system) must(method, path, token string, body any, want int, out any) http.Header {
	s.t.Helper()
	status, hdr, b := s.call(method, path, token, body)
	if status != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return hdr
}

// eventually polls cond (reading state through the API) until it holds.
func (s *system) eventually(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling the public API for an asynchronous outcome
	}
}

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

func baseEnv(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"EVENTMART_ADMIN_EMAIL=" + adminEmail, "EVENTMART_ADMIN_PASSWORD=" + adminPassword,
		"EVENTMART_JWT_SECRET=e2e-secret-e2e-secret-e2e-secret-e2e-secret",
		"EVENTMART_LOG_LEVEL=info",
	}
	return append(env, extra...)
}

// startEmbedded runs `eventmart run` on the embedded log in dataDir.
func startEmbedded(t *testing.T, dataDir string) *system {
	addr := freeAddr(t)
	p := &proc{name: "run", addr: addr, log: filepath.Join(dataDir, "eventmart.log"),
		args: []string{"run"}, env: baseEnv("EVENTMART_DATA="+dataDir, "EVENTMART_ADDR="+addr)}
	p.start(t)
	return &system{t: t, base: "http://" + addr, procs: map[string]*proc{"run": p}, mode: "embedded"}
}

// serviceNames are the domain services, from the one list (internal/cli).
var serviceNames = cli.ServiceNames()

// startDistributed runs every service as its own process, plus the
// gateway, on Kafka and PostgreSQL, with extra environment variables.
func startDistributed(t *testing.T, kafka, pgURL, dataDir string, extra ...string) *system {
	addrs := map[string]string{}
	var urls []string
	for _, name := range serviceNames {
		addrs[name] = freeAddr(t)
		urls = append(urls, name+"=http://"+addrs[name])
	}
	// The session timeout of the README's production commands: services
	// refuse to start on Kafka with one above half the saga timeout.
	common := []string{"EVENTMART_BUS=kafka://" + kafka, "EVENTMART_DB=" + pgURL, "EVENTMART_DATA=" + dataDir,
		"EVENTMART_SERVICE_URLS=" + strings.Join(urls, ","), "EVENTMART_SESSION_TIMEOUT=10s"}
	common = append(common, extra...)
	s := &system{t: t, procs: map[string]*proc{}, mode: "distributed"}
	for _, name := range append(serviceNames, "gateway") {
		addr := addrs[name]
		if name == "gateway" {
			addr = freeAddr(t)
			s.base = "http://" + addr
		}
		s.procs[name] = &proc{name: name, addr: addr, log: filepath.Join(dataDir, name+".log"),
			args: []string{"serve", name}, env: baseEnv(append(common, "EVENTMART_ADDR="+addr)...)}
	}
	for _, p := range s.procs {
		p.start(t)
	}
	return s
}
