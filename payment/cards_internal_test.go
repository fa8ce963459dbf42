package payment

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/internal/testenv"
)

// A database of a release that vaulted a row per order holds several rows
// of one card: the migration to one card per customer keeps them all,
// marks one of each (user, fingerprint) as the card vaulting answers, and
// does not fail on them. SQLite, or PostgreSQL with
// EVENTMART_TEST_SERVICES_DB=postgres.
func TestCardPerUserMigrationKeepsDuplicates(t *testing.T) {
	ctx := context.Background()
	dsn := ""
	if os.Getenv("EVENTMART_TEST_SERVICES_DB") == "postgres" {
		dsn = testenv.FreshPostgres(t, Name)
	}
	db, err := sqldb.Open(ctx, Name, dsn, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sub, _ := fs.Sub(migrations, "migrations")
	ms, err := sqldb.ReadMigrations(sub, "")
	if err != nil {
		t.Fatal(err)
	}
	var before, after []sqldb.Migration
	for _, m := range ms {
		if m.Name < "0003" {
			before = append(before, m)
		} else {
			after = append(after, m)
		}
	}
	if len(after) == 0 || !strings.HasPrefix(after[0].Name, "0003_") {
		t.Fatalf("migrations %v: want 0003 after the first two", after)
	}
	if err := db.Migrate(ctx, before...); err != nil {
		t.Fatal(err)
	}
	// u1 vaulted card A with three orders, card B with one; u2 card A
	// with two; u3 has a card in clear from before fingerprints.
	rows := []struct{ token, user, fp string }{
		{"tok_a3", "u1", "fpA"}, {"tok_a1", "u1", "fpA"}, {"tok_a2", "u1", "fpA"}, {"tok_b1", "u1", "fpB"},
		{"tok_c2", "u2", "fpA"}, {"tok_c1", "u2", "fpA"}, {"tok_d1", "u3", ""},
	}
	for i, r := range rows {
		if _, err := db.Exec(ctx, `INSERT INTO cards (token, user_id, number, last4, brand, fingerprint, created_at) VALUES (?, ?, 'enc1:k1:x', '4242', 'visa', ?, ?)`,
			r.token, r.user, r.fp, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx, after...); err != nil {
		t.Fatalf("the migration failed on duplicate cards: %v", err)
	}
	got := map[string]string{}
	rs, err := db.Query(ctx, `SELECT token, duplicate FROM cards`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var token, dup string
		if err := rs.Scan(&token, &dup); err != nil {
			t.Fatal(err)
		}
		got[token] = dup
	}
	rs.Close()
	want := map[string]string{"tok_a1": "", "tok_a2": "tok_a2", "tok_a3": "tok_a3", "tok_b1": "", "tok_c1": "", "tok_c2": "tok_c2", "tok_d1": "tok_d1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the migration: %v, want %v", got, want)
	}

	// The card vaulting answers is the one marked; an insert of another
	// row of it does nothing and answers that card.
	s := &store{db: db}
	for _, c := range []struct{ user, fp, want string }{{"u1", "fpA", "tok_a1"}, {"u1", "fpB", "tok_b1"}, {"u2", "fpA", "tok_c1"}, {"u3", "", ""}, {"u3", "fpA", ""}} {
		card, err := s.userCard(ctx, c.user, c.fp)
		if err != nil {
			t.Fatal(err)
		}
		if token := tokenOf(card); token != c.want {
			t.Errorf("card of %s %q: %q, want %q", c.user, c.fp, token, c.want)
		}
	}
	card, created, err := s.insertCard(ctx, &vaultedCard{Card: Card{Token: "tok_new", Last4: "4242", Brand: "visa"}, UserID: "u1", Number: "enc1:k1:y", Fingerprint: "fpA"}, time.Now())
	if err != nil || created || card.Token != "tok_a1" {
		t.Errorf("insert of u1's card A again: %+v created %v %v, want tok_a1, not created", card, created, err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM cards`).Scan(&n); err != nil || n != len(rows) {
		t.Errorf("%d cards (%v), want %d", n, err, len(rows))
	}
}

func tokenOf(c *Card) string {
	if c == nil {
		return ""
	}
	return c.Token
}

// The memory holds up to its size of cards, forgetting the least recently
// used first; forgetToken forgets a card by its token.
func TestCardMemoryBound(t *testing.T) {
	m := newCardMemory(3)
	for i := range 3 {
		m.put("u", fmt.Sprint("fp", i), Card{Token: fmt.Sprint("tok", i)})
	}
	if _, ok := m.get("u", "fp0"); !ok { // fp0 is now the most recently used
		t.Fatal("fp0 forgotten")
	}
	m.put("u", "fp3", Card{Token: "tok3"})
	if _, ok := m.get("u", "fp1"); ok || m.len() != 3 {
		t.Errorf("fp1 (least recently used) still remembered, or %d cards, want 3", m.len())
	}
	for _, fp := range []string{"fp0", "fp2", "fp3"} {
		if _, ok := m.get("u", fp); !ok {
			t.Errorf("%s forgotten", fp)
		}
	}
	if _, ok := m.get("v", "fp0"); ok {
		t.Error("another user's card answered")
	}
	m.forgetToken("tok2")
	if _, ok := m.get("u", "fp2"); ok || m.len() != 2 {
		t.Errorf("tok2 still remembered, or %d cards, want 2", m.len())
	}
}
