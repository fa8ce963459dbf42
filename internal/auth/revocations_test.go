package auth

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func TestRevocations(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	r := NewRevocations(func() time.Time { return now })
	old := Identity{UserID: "u1", SessionID: "s-old", SessionStart: now.Add(-time.Hour)}
	kept := Identity{UserID: "u1", SessionID: "s-kept", SessionStart: now.Add(-time.Minute)}
	later := Identity{UserID: "u1", SessionID: "s-later", SessionStart: now.Add(time.Second)}
	other := Identity{UserID: "u2", SessionID: "s-other", SessionStart: now.Add(-time.Hour)}

	r.RevokeUser("u1", now, "s-kept", now.Add(24*time.Hour))
	for _, c := range []struct {
		id   Identity
		want bool
	}{{old, true}, {kept, false}, {later, false}, {other, false}} {
		if got := r.Revoked(c.id); got != c.want {
			t.Errorf("Revoked(%s) = %v, want %v", c.id.SessionID, got, c.want)
		}
	}
	// An earlier revocation arriving late changes nothing; a later one
	// without a kept session ends the kept one too.
	r.RevokeUser("u1", now.Add(-time.Hour), "", now.Add(24*time.Hour))
	if r.Revoked(kept) {
		t.Error("an earlier revocation ended the kept session")
	}
	r.RevokeUser("u1", now.Add(2*time.Second), "", now.Add(24*time.Hour))
	if !r.Revoked(kept) || !r.Revoked(later) {
		t.Error("a later revocation of every session left one")
	}
	r.RevokeSession("s-other", now.Add(time.Hour))
	if !r.Revoked(other) {
		t.Error("RevokeSession did not end the session")
	}
	// Entries are forgotten once the tokens they refuse have expired.
	now = now.Add(25 * time.Hour)
	r.RevokeSession("s-new", now.Add(time.Hour))
	if r.Revoked(other) || r.Revoked(old) || len(r.sessions) != 1 || len(r.users) != 0 {
		t.Errorf("after expiry: sessions %v users %v", r.sessions, r.users)
	}
}

func TestRevocationsConcurrently(t *testing.T) {
	r := NewRevocations(time.Now)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 100 {
				r.RevokeSession(string(rune('a'+i))+string(rune('a'+j%26)), time.Now().Add(time.Hour))
			}
		}()
		go func() {
			defer wg.Done()
			for range 100 {
				r.Revoked(Identity{UserID: "u", SessionID: "aa"})
			}
		}()
	}
	wg.Wait()
	if !r.Revoked(Identity{SessionID: "aa"}) {
		t.Error("session aa not revoked")
	}
}

func TestRefreshAndAccessTokensAreNotInterchangeable(t *testing.T) {
	tk, err := NewTokens(bytes.Repeat([]byte("s"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{UserID: "u1", Role: RoleCustomer, SessionID: "s1", SessionStart: time.Now().Truncate(time.Millisecond)}
	access, _, err := tk.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	refresh, exp, err := tk.IssueRefresh(id)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(id.SessionStart.Add(DefaultRefreshTTL)) {
		t.Errorf("refresh expiry %v, want the session start plus %v", exp, DefaultRefreshTTL)
	}
	if _, err := tk.Verify(refresh); err == nil {
		t.Error("a refresh token verified as an access token")
	}
	if _, err := tk.VerifyRefresh(access); err == nil {
		t.Error("an access token verified as a refresh token")
	}
	got, err := tk.VerifyRefresh(refresh)
	if err != nil || got.SessionID != "s1" || !got.SessionStart.Equal(id.SessionStart) {
		t.Errorf("VerifyRefresh = %+v, %v", got, err)
	}
	tk.EndSessions("u1", "s1", "", time.Now())
	if _, err := tk.Verify(access); err == nil {
		t.Error("the access token of an ended session verified")
	}
	if _, err := tk.VerifyRefresh(refresh); err == nil {
		t.Error("the refresh token of an ended session verified")
	}
}
