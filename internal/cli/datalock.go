package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/eventmart/eventmart/internal/fsperm"
)

// dataLock is an exclusive lock on a file in the data directory, held for
// the life of a process that owns files there: the embedded log, or a
// service's SQLite file. A second process on the same files would run a
// second stack on them, so it is refused at start instead. The kernel
// releases the lock when the process exits, even on kill -9: a stale file
// never blocks a restart.
type dataLock struct{ f *os.File }

// errDataInUse is returned when another process holds a data lock.
var errDataInUse = errors.New("data directory in use")

// lockData takes the lock file dir/name.lock and writes this process's pid
// into it. If another process holds it, the error names that process's pid
// and address as it wrote them.
func lockData(dir, name string) (*dataLock, error) {
	if err := fsperm.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, name+".lock")
	// The start's permission check would warn about a wider mode of the
	// very file it just made.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fsperm.File)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			return nil, fmt.Errorf("%w: %s is held by %s; stop it, or give this process another --data (EVENTMART_DATA)", errDataInUse, path, who)
		}
		return nil, fmt.Errorf("data directory: lock %s: %w", path, err)
	}
	l := &dataLock{f: f}
	if err := l.note(""); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// note records this process (and its listen address, once known) in the
// lock file, for the message a second process prints.
func (l *dataLock) note(addr string) error {
	s := fmt.Sprintf("eventmart pid %d", os.Getpid())
	if addr != "" {
		s += " listening on http://" + addr
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if _, err := l.f.WriteAt([]byte(s+"\n"), 0); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}

// release drops the lock; the file stays (removing it would race with a
// process about to lock it).
func (l *dataLock) release() {
	if l != nil {
		l.f.Close()
	}
}

// dataLocks takes the locks of the files in cfg.Data this process will
// own: the embedded log (which every service of the process writes through,
// so it guards the whole directory), else each SQLite file of defs.
func dataLocks(cfg Config, services []string) ([]*dataLock, error) {
	var names []string
	switch {
	case cfg.Bus == "" || cfg.Bus == "embedded":
		names = []string{"eventmart"}
	case cfg.DB == "":
		names = services
	}
	var locks []*dataLock
	for _, n := range names {
		l, err := lockData(cfg.Data, n)
		if err != nil {
			releaseAll(locks)
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func releaseAll(locks []*dataLock) {
	for _, l := range locks {
		l.release()
	}
}
