package auth

import (
	"sync"
	"time"
)

// Revocations is the list of ended sessions that Verify refuses. Every
// process keeps its own copy, fed from the SessionsRevoked events of
// user-events (internal/app's session watcher), so a session ended on one
// instance ends on all of them; the instance that ends a session also adds
// it at once.
//
// An entry lives as long as the tokens it refuses could: until the end of
// the longest session (the refresh lifetime) after the revocation. Safe for
// concurrent use.
type Revocations struct {
	now func() time.Time

	mu       sync.RWMutex
	sessions map[string]time.Time      // session id → forget after
	users    map[string]userRevocation // user id → the latest revocation of all its sessions
	swept    time.Time
}

// userRevocation ends every session of a user that started at or before
// before, except the session keep (the one that changed the password).
type userRevocation struct {
	before time.Time
	keep   string
	until  time.Time // forget after
}

// NewRevocations returns an empty list; now is the clock entries expire by.
func NewRevocations(now func() time.Time) *Revocations {
	return &Revocations{now: now, sessions: map[string]time.Time{}, users: map[string]userRevocation{}}
}

// RevokeSession ends one session, remembered until until.
func (r *Revocations) RevokeSession(sessionID string, until time.Time) {
	if sessionID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if until.After(r.sessions[sessionID]) {
		r.sessions[sessionID] = until
	}
	r.sweep()
}

// RevokeUser ends every session of userID that started at or before
// before, except the session keep ("" for none), remembered until until.
// A later revocation of the same user replaces an earlier one; an earlier
// one arriving late (events of other partitions) is ignored.
func (r *Revocations) RevokeUser(userID string, before time.Time, keep string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.users[userID]
	switch {
	case !ok || before.After(prev.before):
		r.users[userID] = userRevocation{before: before, keep: keep, until: until}
	case before.Equal(prev.before) && keep != prev.keep:
		// Two revocations in one millisecond: keeping neither session is the safe side.
		r.users[userID] = userRevocation{before: before, until: until}
	}
	r.sweep()
}

// Revoked reports whether id's session has ended.
func (r *Revocations) Revoked(id Identity) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.sessions[id.SessionID]; ok && id.SessionID != "" {
		return true
	}
	u, ok := r.users[id.UserID]
	if !ok || (u.keep != "" && u.keep == id.SessionID) {
		return false
	}
	return !id.SessionStart.After(u.before)
}

// sweepEvery bounds how often expired entries are looked for.
const sweepEvery = time.Minute

// sweep forgets expired entries; r.mu is held.
func (r *Revocations) sweep() {
	now := r.now()
	if now.Sub(r.swept) < sweepEvery {
		return
	}
	r.swept = now
	for id, until := range r.sessions {
		if now.After(until) {
			delete(r.sessions, id)
		}
	}
	for id, u := range r.users {
		if now.After(u.until) {
			delete(r.users, id)
		}
	}
}

// EndSessions refuses, from now on, the tokens of the sessions a
// SessionsRevoked event names: with sessionID that one session, else every
// session of userID that started at or before at except keep. It is
// remembered for one session lifetime after at.
func (t *Tokens) EndSessions(userID, sessionID, keep string, at time.Time) {
	until := at.Add(t.refreshTTL)
	if sessionID != "" {
		t.revoked.RevokeSession(sessionID, until)
		return
	}
	t.revoked.RevokeUser(userID, at, keep, until)
}
