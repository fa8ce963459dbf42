package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A token verified once is remembered, but every later Verify still checks
// its expiry at that moment, its kind (access or refresh) and its session's
// revocation; a token not signed with the secret is never remembered.
func TestVerifyRemembersOnlySignaturesNotValidity(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	tk, err := NewTokens(bytes.Repeat([]byte("s"), 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tk.now = func() time.Time { return now }
	tk.revoked = NewRevocations(func() time.Time { return now })
	id := Identity{UserID: "u1", Role: RoleCustomer, SessionID: "s1", SessionStart: now}
	tok, _, err := tk.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second is answered from memory
		if got, err := tk.Verify(tok); err != nil || got.UserID != "u1" || got.SessionID != "s1" {
			t.Fatalf("Verify #%d = %+v, %v", i+1, got, err)
		}
	}
	if _, ok := tk.verified.get(tok); !ok {
		t.Fatal("a verified token was not remembered")
	}
	if _, err := tk.VerifyRefresh(tok); err == nil || !strings.Contains(err.Error(), "not a refresh token") {
		t.Errorf("an access token remembered was accepted as a refresh token: %v", err)
	}

	forged := tok[:strings.LastIndexByte(tok, '.')+1] + strings.Repeat("A", 43)
	if _, err := tk.Verify(forged); err == nil {
		t.Error("a token with another signature was accepted")
	}
	if _, ok := tk.verified.get(forged); ok {
		t.Error("a token that failed verification was remembered")
	}

	tk.revoked.RevokeSession("s1", now.Add(time.Hour))
	if _, err := tk.Verify(tok); err == nil || !strings.Contains(err.Error(), "session has ended") {
		t.Errorf("a remembered token of a revoked session: %v", err)
	}
	tk.revoked = NewRevocations(func() time.Time { return now })

	now = now.Add(2 * time.Minute) // past the access token's expiry
	if _, err := tk.Verify(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a remembered token after its expiry: %v, want expired", err)
	}
}

// The memory of verified tokens is bounded: two generations of verifiedCap.
func TestVerifiedTokensAreBounded(t *testing.T) {
	var v verifiedTokens
	c := &claims{}
	for i := range 3*verifiedCap + 7 {
		v.add(strings.Repeat("x", i%50)+string(rune(i)), c)
	}
	if n := len(v.cur) + len(v.prev); n > 2*verifiedCap {
		t.Fatalf("%d tokens remembered, want at most %d", n, 2*verifiedCap)
	}
	v.add("recent", c)
	if _, ok := v.get("recent"); !ok {
		t.Fatal("the most recent token was forgotten")
	}
}
