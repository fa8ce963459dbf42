package sqldb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), "group", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(context.Background(), `CREATE TABLE t (k INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// queued waits until n calls wait behind the leader: a condition on the
// group's own queue, not a sleep.
func queued(db *DB, n int) {
	for {
		db.group.mu.Lock()
		l := len(db.group.queue)
		db.group.mu.Unlock()
		if l >= n {
			return
		}
		runtime.Gosched()
	}
}

// led waits until a caller leads a round.
func led(db *DB) {
	for {
		db.group.mu.Lock()
		leading := db.group.leading
		db.group.mu.Unlock()
		if leading {
			return
		}
		runtime.Gosched()
	}
}

// TestGroupCommitSharesATransaction: calls arriving while one runs are
// committed together; a failing call, a panicking one and one whose context
// ended roll back alone, and only the committed calls' hooks run.
func TestGroupCommitSharesATransaction(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the leader, held inside its transaction
		defer wg.Done()
		if err := db.InTx(ctx, func(tx *Tx) error {
			<-release
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (0)`)
			return err
		}); err != nil {
			t.Error(err)
		}
	}()
	led(db)

	const n = 20
	errs := make([]error, n+1)
	var hooked, ended, sharedSeen sync.Map
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	boom := errors.New("boom")
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("panicked: %v", v)
				}
			}()
			cctx := ctx
			if i == 7 {
				cctx = cancelled
			}
			errs[i] = db.InTx(cctx, func(tx *Tx) error {
				sharedSeen.Store(i, tx.shared)
				tx.OnEnd(func() { _, hook := hooked.Load(i); ended.Store(i, hook) }) // ended, and whether after its commit hook
				if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (?)`, i); err != nil {
					return err
				}
				tx.OnCommit(func() { hooked.Store(i, true) })
				switch i {
				case 3:
					return boom
				case 5:
					panic("five")
				case 9: // a constraint error leaves the shared transaction usable
					_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (0)`) // the leader's, committed
					return err
				}
				return nil
			})
		}()
	}
	queued(db, n)
	close(release)
	wg.Wait()

	for i := 1; i <= n; i++ {
		var count int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM t WHERE k = ?`, i).Scan(&count); err != nil {
			t.Fatal(err)
		}
		_, hook := hooked.Load(i)
		shared, ran := sharedSeen.Load(i)
		afterHook, end := ended.Load(i)
		if end != ran {
			t.Errorf("call %d: ran %v, its end hook run %v", i, ran, end)
		}
		if end && afterHook != hook {
			t.Errorf("call %d: end hook run after the commit hook %v, want %v", i, afterHook, hook)
		}
		switch i {
		case 3, 5, 7, 9:
			if count != 0 || hook {
				t.Errorf("call %d: row committed %v, hook run %v; want neither", i, count == 1, hook)
			}
		default:
			if errs[i] != nil || count != 1 || !hook {
				t.Errorf("call %d: err %v, rows %d, hook run %v", i, errs[i], count, hook)
			}
			if ran && shared != true {
				t.Errorf("call %d ran in a transaction of its own, want a shared one", i)
			}
		}
	}
	if !errors.Is(errs[3], boom) {
		t.Errorf("failing call: %v, want its own error", errs[3])
	}
	if errs[5] == nil || errs[5].Error() != "panicked: five" {
		t.Errorf("panicking call: %v, want its panic again in its goroutine", errs[5])
	}
	if !errors.Is(errs[7], context.Canceled) {
		t.Errorf("cancelled call: %v", errs[7])
	}
	if _, ran := sharedSeen.Load(7); ran {
		t.Error("a call whose context had ended was run")
	}
	if errs[9] == nil || !IsUniqueViolation(errs[9]) {
		t.Errorf("constraint-violating call: %v", errs[9])
	}
	var total int
	db.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&total)
	if total != 1+n-4 {
		t.Errorf("%d rows, want %d", total, 1+n-4)
	}
}

// TestGroupCommitConcurrent hammers InTx from many goroutines (run with
// -race): every successful call's row is there exactly once.
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := g*1000 + i
				if err := db.InTx(ctx, func(tx *Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (?)`, k)
					return err
				}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var total int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 16*50 {
		t.Fatalf("%d rows, want %d", total, 16*50)
	}
}

// TestGroupCommitLeaderLeadsOneRound: a caller returns once its own round
// has committed, while the calls queued meanwhile run in a round led by
// one of them.
func TestGroupCommitLeaderLeadsOneRound(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	hold, next := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		leaderDone <- db.InTx(ctx, func(tx *Tx) error {
			<-hold
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (1)`)
			return err
		})
	}()
	led(db)
	queuedDone := make(chan error, 1)
	go func() {
		queuedDone <- db.InTx(ctx, func(tx *Tx) error {
			<-next // held: the next round is still running when the first caller returns
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`)
			return err
		})
	}()
	queued(db, 1)
	close(hold)
	if err := <-leaderDone; err != nil {
		t.Fatal(err)
	}
	close(next)
	if err := <-queuedDone; err != nil {
		t.Fatal(err)
	}
	var total int
	db.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&total)
	if total != 2 {
		t.Fatalf("%d rows, want 2", total)
	}
}

// TestLoneTransactionEndsWithItsContext: a transaction of one caller on
// SQLite runs its statements without watching the caller's context (no
// interrupting goroutine per statement), yet a context that has ended
// fails the next statement with its error, and nothing commits; a
// context ended before the transaction began fails it at once.
func TestLoneTransactionEndsWithItsContext(t *testing.T) {
	db := openTestSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := db.InTx(ctx, func(tx *Tx) error {
		if tx.shared {
			t.Error("a lone call ran in a shared transaction")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (1)`); err != nil {
			return err
		}
		cancel()
		_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("InTx after its context ended: %v, want context.Canceled", err)
	}
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows committed (%v), want none", n, err)
	}
	ran := false
	err = db.InTx(ctx, func(tx *Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("InTx with an ended context: %v, ran %v; want context.Canceled, not run", err, ran)
	}
	// The connection is usable afterwards.
	if err := db.InTx(context.Background(), func(tx *Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO t (k) VALUES (3)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestStatementAfterAnEndedContext: a statement that failed for its ended
// context leaves nothing behind in the transaction: the same statement run
// again with a live context (first prepared, then bound to the transaction
// and kept) runs and commits.
func TestStatementAfterAnEndedContext(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	q := `INSERT INTO t (k) VALUES (?)`
	if _, err := db.Exec(ctx, q, 1); err != nil { // prepares q once the transaction ends
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	err := db.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ended, q, 2); !errors.Is(err, context.Canceled) {
			t.Errorf("a statement with an ended context: %v, want context.Canceled", err)
		}
		for k := 3; k <= 4; k++ {
			if _, err := tx.Exec(ctx, q, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int
	if err := db.QueryRow(ctx, `SELECT count(*), sum(k) FROM t`).Scan(&n, &sum); err != nil || n != 3 || sum != 8 {
		t.Fatalf("rows %d, sum %d (%v); want keys 1, 3 and 4", n, sum, err)
	}
}

// TestInTxWithNextRidesTheNextCommit: work queued by InTxWithNext starts
// no transaction of its own; it commits with the next caller's, in one
// commit, each behind its own savepoint (the rider failing fails alone).
// A queue of riders alone is not led by a round's end.
func TestInTxWithNextRidesTheNextCommit(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	before := db.Stats()
	const forever = 24 * time.Hour
	rode := make(chan error, 2)
	go func() {
		rode <- db.InTxWithNext(ctx, forever, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (1)`)
			return err
		})
	}()
	go func() {
		rode <- db.InTxWithNext(ctx, forever, func(tx *Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`); err != nil {
				return err
			}
			return errors.New("the rider fails")
		})
	}()
	queued(db, 2)
	db.group.mu.Lock()
	leading := db.group.leading
	db.group.mu.Unlock()
	if leading {
		t.Fatal("riders alone started a round")
	}
	if got := db.Stats().Sub(before).Commits; got != 0 {
		t.Fatalf("commits before any caller came: %d, want 0", got)
	}
	if err := db.InTx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (3)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var failed int
	for range 2 {
		if err := <-rode; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d riders failed, want the one whose work failed", failed)
	}
	if got := db.Stats().Sub(before).Commits; got != 1 {
		t.Fatalf("commits: %d, want 1 (the riders joined the caller's)", got)
	}
	var keys string
	if err := db.QueryRow(ctx, `SELECT group_concat(k) FROM (SELECT k FROM t ORDER BY k)`).Scan(&keys); err != nil || keys != "1,3" {
		t.Fatalf("rows %q (%v), want 1,3", keys, err)
	}
}

// TestInTxWithNextCommitsAloneAfterItsWait: with no other caller, the
// rider commits by itself once its wait has passed.
func TestInTxWithNextCommitsAloneAfterItsWait(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	if err := db.InTxWithNext(ctx, time.Millisecond, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (7)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM t WHERE k = 7`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("row committed: %d (%v), want 1", n, err)
	}
	db.group.mu.Lock()
	defer db.group.mu.Unlock()
	if len(db.group.queue) != 0 || db.group.leading {
		t.Fatalf("group left with %d queued, leading %v", len(db.group.queue), db.group.leading)
	}
}

// TestInTxWithNextOutwaitsALeader: a rider whose wait ends while a round
// it is not part of runs waits again, and once that round leaves it
// queued alone (riders alone are not led) it leads a round itself.
func TestInTxWithNextOutwaitsALeader(t *testing.T) {
	ctx := context.Background()
	db := openTestSQLite(t)
	waited := make(chan struct{}, 1)
	db.group.rideWaited = func() {
		select {
		case waited <- struct{}{}:
		default:
		}
	}
	release, running := make(chan struct{}), make(chan struct{})
	leader := make(chan error, 1)
	go func() { // the leader, held inside its transaction
		leader <- db.InTx(ctx, func(tx *Tx) error {
			close(running) // its round has taken the queue
			<-release
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (1)`)
			return err
		})
	}()
	<-running
	rode := make(chan error, 1)
	go func() {
		rode <- db.InTxWithNext(ctx, time.Nanosecond, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t (k) VALUES (2)`)
			return err
		})
	}()
	<-waited // its wait ended while the leader's round ran
	close(release)
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rode:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a guard against a hang, not a measure
		t.Fatal("the rider never committed once the leader's round ended")
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows %d (%v), want 2", n, err)
	}
}
