package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// processCPU returns the CPU time (user + system) used so far by the
// processes pids and all their descendants, including the children they
// have already reaped (a PostgreSQL backend that exited). Linux only:
// elsewhere it fails.
func processCPU(pids []int) (time.Duration, error) {
	procs, err := readProcs()
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, pid := range pids {
		cpu, err := treeCPU(procs, pid)
		if err != nil {
			return 0, err
		}
		total += cpu
	}
	return total, nil
}

// treeCPU returns the CPU time of pid and all its descendants in procs
// (readProcs).
func treeCPU(procs map[int]procStat, pid int) (time.Duration, error) {
	if _, ok := procs[pid]; !ok {
		return 0, fmt.Errorf("loadgen: cpu: no process %d", pid)
	}
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var total time.Duration
	seen := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		total += procs[pid].cpu
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(pid)
	return total, nil
}

type procStat struct {
	ppid int
	cpu  time.Duration // utime+stime+cutime+cstime
}

// readProcs reads /proc/*/stat of every process.
func readProcs() (map[int]procStat, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("loadgen: cpu: /proc is not readable (Linux only): %v", err)
	}
	procs := make(map[int]procStat, len(paths))
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process exited meanwhile
		}
		pid, p, err := parseStat(string(b))
		if err != nil {
			return nil, fmt.Errorf("loadgen: cpu: %s: %w", path, err)
		}
		procs[pid] = p
	}
	return procs, nil
}

// parseStat parses one /proc/<pid>/stat line: "pid (comm) state ppid …",
// where comm may hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseStat(s string) (int, procStat, error) {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return 0, procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return 0, procStat{}, fmt.Errorf("malformed pid in %q", s)
	}
	// After comm: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(s[close+1:])
	if len(f) < 15 {
		return 0, procStat{}, fmt.Errorf("short stat %q", s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, procStat{}, fmt.Errorf("malformed ppid in %q", s)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, procStat{}, fmt.Errorf("malformed cpu time in %q", s)
		}
		ticks += n
	}
	return pid, procStat{ppid: ppid, cpu: time.Duration(ticks) * clockTick}, nil
}

// jitCPU returns the CPU time used so far by the JIT compiler threads of
// pid when it is a HotSpot JVM (threads named "C1 CompilerThread…" and
// "C2 CompilerThread…"; 0 for any other process): a JVM compiles its hot
// code in its first minutes, a cost of its start, not of the work it
// serves then. Linux only, like processCPU.
func jitCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*", pid))
	var total time.Duration
	for _, t := range tasks {
		comm, err := os.ReadFile(t + "/comm")
		if err != nil || !isJITThread(comm) {
			continue
		}
		b, err := os.ReadFile(t + "/stat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if _, st, err := parseStat(string(b)); err == nil {
			total += st.cpu
		}
	}
	return total
}

// isJITThread says whether a thread's /proc comm (its name, cut at 15
// bytes) is one of HotSpot's compiler threads.
func isJITThread(comm []byte) bool {
	return bytes.HasPrefix(comm, []byte("C1 CompilerThre")) || bytes.HasPrefix(comm, []byte("C2 CompilerThre"))
}

// pidStartTime returns when pid started, in Unix seconds, as Prometheus's
// process collector exports it (process_start_time_seconds): the stat's
// starttime ticks after the boot time of /proc/stat.
func pidStartTime(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu: %w", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("loadgen: cpu: short stat of %d", pid)
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64) // field 22, starttime
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu: stat of %d: %w", pid, err)
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu: %w", err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("loadgen: cpu: /proc/stat btime: %w", err)
			}
			return float64(boot) + float64(ticks)*clockTick.Seconds(), nil
		}
	}
	return 0, errors.New("loadgen: cpu: no btime in /proc/stat")
}

// ProcessName returns pid's command name (/proc/<pid>/comm), or "pid N".
func ProcessName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return strings.TrimSpace(string(b))
}
