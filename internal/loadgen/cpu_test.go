package loadgen

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm holds a space and a parenthesis; utime..cstime are 100+20+3+4 ticks.
	line := "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 100 0 0 0 100 20 3 4 20 0 1 0 5 1000 10\n"
	pid, p, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if pid != 4242 || p.ppid != 17 || p.cpu != 127*clockTick {
		t.Fatalf("parseStat = %d, %+v; want 4242, ppid 17, 1.27s", pid, p)
	}
	for _, bad := range []string{"", "12 noparen S 1", "x (a) S 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "1 (a) S 1 2"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) did not fail", bad)
		}
	}
}

// A busy child's CPU counts towards its parent's pid, whether it still
// runs or was reaped.
func TestProcessCPUCountsDescendants(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	before, err := processCPU([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	// A shell loop of a fixed amount of work (~0.3 s of CPU here), then it
	// exits; Wait reaps it. Counted in iterations, not wall time: on a
	// loaded machine it takes longer but burns the same CPU.
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	after, err := processCPU([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	// Well under what the loop burns, for a faster machine.
	if got := after - before; got < 50*time.Millisecond {
		t.Fatalf("cpu of a reaped busy child = %s, want ≥ 50ms", got)
	}
	if _, err := processCPU([]int{1 << 30}); err == nil {
		t.Fatal("processCPU of a missing pid did not fail")
	}
}

func TestJITThreadsAreHotSpotsCompilers(t *testing.T) {
	for comm, want := range map[string]bool{
		"C2 CompilerThre\n": true,
		"C1 CompilerThre\n": true,
		"data-plane-kafk\n": false,
		"GC Thread#0\n":     false,
		"eventmart\n":       false,
	} {
		if got := isJITThread([]byte(comm)); got != want {
			t.Errorf("isJITThread(%q) = %v, want %v", comm, got, want)
		}
	}
	if runtime.GOOS != "linux" {
		t.Skip("/proc: Linux only")
	}
	// A Go process has no compiler thread: nothing of its CPU is JIT's.
	if jit := jitCPU(os.Getpid()); jit != 0 {
		t.Errorf("jitCPU(self) = %v, want 0", jit)
	}
}
