package order

import (
	"time"

	"github.com/eventmart/eventmart/internal/heard"
)

// userMemory remembers the users projection's rows that POST /orders
// reads — who may order, and the customer data the order is placed with —
// so that placing an order reads nothing before its transaction: the
// caller's row comes from memory, and a retried Idempotency-Key is found by
// the transaction's own insert of the key (errKeyTaken). Users change
// rarely; orders are placed all the time. A nil *user is remembered for a
// user with no row yet (no event about the user arrived).
//
// It answers only while every write of the projection is heard of (the
// Service's hearsEveryChange: SQLite, which one process owns, or a
// LISTENing instance on PostgreSQL): on this instance a write's user is
// answered by no lookup from the write's statement to its transaction's
// end, and forgotten once it commits (store.writingUser); on every
// instance, forgotten when the notification the write sends arrives
// (payload "ID user" on the order channel, see store.upsertUser). The
// rest of the contract — the age bound for writes nobody hears of (an
// older release, without the notification, during a rolling upgrade),
// reads overtaken by a write not remembered, the entry bound — is
// heard.Memory's.
type userMemory struct {
	*heard.Memory[string, *user]
}

const (
	maxUsersRemembered = 50_000 // ~150 bytes each: ~8 MB at most
	maxUserAge         = 5 * time.Second
)

// newUserMemory returns an empty userMemory, trusted while trusted
// reports that every write is heard of, on clock now.
func newUserMemory(trusted func() bool, now func() time.Time) userMemory {
	return userMemory{heard.New[string, *user](heard.Config{Trusted: trusted, MaxEntries: maxUsersRemembered, MaxAge: maxUserAge, Now: now})}
}
