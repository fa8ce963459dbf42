package loadgen

import (
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
	for _, pid := range pids {
		if _, ok := procs[pid]; !ok {
			return 0, fmt.Errorf("loadgen: cpu: no process %d", pid)
		}
		walk(pid)
	}
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

// cpuMeter measures the CPU the watched processes and this one spend
// between start and stop.
type cpuMeter struct {
	pids        []int
	start, self time.Duration
}

func startCPU(pids []int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids}
	var err error
	if m.start, err = processCPU(pids); err != nil {
		return nil, err
	}
	if m.self, err = processCPU([]int{os.Getpid()}); err != nil {
		return nil, err
	}
	return m, nil
}

// settleTimeout bounds how long stop waits for the watched processes to
// finish the work the run caused (events after an order's final status:
// audit, notifications, offset commits).
const settleTimeout = 15 * time.Second

// stop waits until the watched processes are quiet (less than 2% of a core
// over half a second) and returns the CPU they and this process spent since
// start.
func (m *cpuMeter) stop() (watched, self time.Duration, err error) {
	self, err = processCPU([]int{os.Getpid()})
	if err != nil {
		return 0, 0, err
	}
	self -= m.self
	const window = 500 * time.Millisecond
	prev, err := processCPU(m.pids)
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		time.Sleep(window) // sampling: the quiet is measured over the window
		cur, err := processCPU(m.pids)
		if err != nil {
			return 0, 0, err
		}
		quiet := cur-prev < window/50
		prev = cur
		if quiet {
			break
		}
	}
	return prev - m.start, self, nil
}
