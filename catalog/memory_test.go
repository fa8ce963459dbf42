package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// databaseReads is how many reads by id s answered from its database.
func databaseReads(s *Service) float64 {
	var m dto.Metric
	s.fromDatabase.Write(&m)
	return m.GetCounter().GetValue()
}

// get reads path from the server at url, failing the test unless it
// answers 200.
func get(t *testing.T, url, path string) []byte {
	t.Helper()
	resp, err := http.Get(url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b.Bytes())
	}
	return b.Bytes()
}

// products decodes the answer of GET /products.
func products(t *testing.T, b []byte) []Product {
	t.Helper()
	var l struct{ Products []Product }
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return l.Products
}

// secondReadFree asserts that once path is read from s (at url), reading
// it again costs no database read and answers the same: at once on SQLite;
// on PostgreSQL eventually, for the notifications of writes committed
// before may still arrive (each forgetting what a read remembered).
func secondReadFree(t *testing.T, h *apptest.Harness, s *Service, url, path string) []byte {
	t.Helper()
	var first []byte
	try := func() bool {
		first = get(t, url, path)
		before := databaseReads(s)
		second := get(t, url, path)
		if !bytes.Equal(first, second) {
			t.Fatalf("from memory %s, from the database %s", second, first)
		}
		return databaseReads(s) == before
	}
	if s.d.DB.Dialect == sqldb.SQLite {
		if !try() {
			t.Errorf("a second read of %s read the database", path)
		}
	} else {
		h.Eventually("a second read of "+path+" costs no database read", try)
	}
	return first
}

func TestProductsByIDAreRememberedUntilWritten(t *testing.T) {
	h := apptest.Start(t, []service.Def{Def()})
	s := h.App.Service(Name).(*Service)
	admin := h.Token("admin-1", "admin")
	h.Eventually("every write heard of", s.hearsEveryWrite) // PostgreSQL: the LISTEN took
	var p1, p2 Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "MEM-1", "name": "One", "priceCents": 100, "currency": "EUR"}, http.StatusCreated, &p1)
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "MEM-2", "name": "Two", "priceCents": 200, "currency": "EUR"}, http.StatusCreated, &p2)
	url := h.Server.URL
	both := "/api/v1/products?ids=" + p2.ID + "," + p1.ID + "," + p2.ID
	b := secondReadFree(t, h, s, url, both)
	if ps := products(t, b); len(ps) != 2 || ps[0].ID != p1.ID || ps[1].ID != p2.ID {
		t.Fatalf("products %+v, want %s then %s (creation order, once each)", ps, p1.ID, p2.ID)
	}
	// The same limit and offset as the database.
	if ps := products(t, get(t, url, both+"&limit=1&offset=1")); len(ps) != 1 || ps[0].ID != p2.ID {
		t.Errorf("limit 1 offset 1: %+v", ps)
	}
	one := "/api/v1/products/" + p1.ID
	secondReadFree(t, h, s, url, one)

	// From a write's statement to its transaction's end (its commit may be
	// visible before its commit hook runs), the product is not answered
	// from memory.
	if err := s.d.DB.InTx(context.Background(), func(tx *sqldb.Tx) error {
		if err := s.store.update(context.Background(), tx, &p1); err != nil {
			return err
		}
		if _, ok := s.mem.lookup([]string{p1.ID}); ok {
			t.Error("a product answered from memory while a write of it is in flight")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A read after this instance's write answers it: at once.
	h.JSON("PATCH", "/api/v1/products/"+p1.ID, admin, map[string]any{"priceCents": 150}, http.StatusOK, nil)
	if ps := products(t, get(t, url, both)); ps[0].PriceCents != 150 {
		t.Errorf("after the write, price %d, want 150", ps[0].PriceCents)
	}
	var got Product
	json.Unmarshal(get(t, url, one), &got)
	if got.PriceCents != 150 {
		t.Errorf("GET %s after the write: price %d, want 150", one, got.PriceCents)
	}
	secondReadFree(t, h, s, url, both)

	// Stock levels (inventory's events) change what is remembered.
	before := databaseReads(s)
	stock := h.Publish("inventory-service", event.FromRequest("c", event.Metadata{}),
		&event.InventoryAdjusted{ProductID: p1.ID, Delta: 10, Level: event.StockLevel{ProductID: p1.ID, OnHand: 10, Available: 10, Version: 1}},
		&event.InventoryReserved{OrderID: "o1", Levels: []event.StockLevel{{ProductID: p1.ID, OnHand: 10, Reserved: 3, Available: 7, Version: 3}}},
		&event.InventoryAdjusted{ProductID: p1.ID, Delta: 10, Level: event.StockLevel{ProductID: p1.ID, OnHand: 10, Available: 10, Version: 2}},
	)
	want := Availability{OnHand: 10, Reserved: 3, Available: 7, InStock: true}
	// All three applied, not only the second: the consumer may take them in
	// more than one batch, and a later batch's write (even of the older
	// level, which changes nothing) keeps the product out of memory while it
	// is in flight, so a read then would go to the database.
	h.Eventually("the three stock events applied", func() bool {
		var n int
		err := s.d.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processed_events WHERE event_id IN (?, ?, ?)`,
			stock[0].EventID, stock[1].EventID, stock[2].EventID).Scan(&n)
		return err == nil && n == len(stock)
	})
	if s.d.DB.Dialect == sqldb.SQLite {
		// Applied at commit to the product remembered, not forgotten: it is
		// answered again, changed, with no read (looked up in memory, for a
		// GET while the levels are being written would read the database).
		h.Eventually("availability 7 remembered", func() bool {
			rs, ok := s.mem.lookup([]string{p1.ID})
			return ok && rs[0].p.Availability == want
		})
		if databaseReads(s) != before {
			t.Errorf("%v database reads while the stock levels arrived, want 0", databaseReads(s)-before)
		}
	}
	h.Eventually("availability 7", func() bool { return products(t, get(t, url, both))[0].Availability == want })
	secondReadFree(t, h, s, url, both)

	h.JSON("DELETE", "/api/v1/products/"+p1.ID, admin, nil, http.StatusOK, nil)
	if p := products(t, get(t, url, both))[0]; p.Status != StatusDiscontinued || p.Availability.InStock {
		t.Errorf("after the discontinuation: %+v", p)
	}

	// A rebuilt availability table swapped in is read anew: here the live
	// one is changed behind the service's back (and remembered so), the
	// rebuild restores it.
	if _, err := s.d.DB.Exec(context.Background(), `UPDATE product_stock SET available = 99`); err != nil {
		t.Fatal(err)
	}
	s.mem.Reset()
	if a := products(t, secondReadFree(t, h, s, url, both))[0].Availability; a.Available != 99 {
		t.Fatalf("availability %+v, want the 99 set behind the service's back", a)
	}
	h.JSON("POST", "/api/v1/admin/rebuild/catalog", admin, nil, http.StatusOK, nil)
	if a := products(t, get(t, url, both))[0].Availability; a.Available != 7 {
		t.Errorf("after the rebuild, availability %+v, want 7 available", a)
	}
}

func TestAnotherInstancesWritesAreHeard(t *testing.T) {
	defs := []service.Def{Def()}
	h := apptest.Start(t, defs, apptest.OnPostgres(t, defs))
	b := h.StartInstance()
	sa, sb := h.App.Service(Name).(*Service), b.Service(Name).(*Service)
	h.Eventually("both instances listening", func() bool { return sa.listening.Load() && sb.listening.Load() })
	srvB := httptest.NewServer(b.Handler())
	defer srvB.Close()
	admin := h.Token("admin-1", "admin")
	var p Product
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "INST", "name": "Shared", "priceCents": 100, "currency": "EUR"}, http.StatusCreated, &p)
	url, path := h.Server.URL, "/api/v1/products?ids="+p.ID
	secondReadFree(t, h, sa, url, path)

	// B's write: A forgets the product when the notification arrives, and
	// its next read answers the new price.
	req, _ := http.NewRequest("PATCH", srvB.URL+"/api/v1/products/"+p.ID, strings.NewReader(`{"priceCents": 250}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH on instance B: %d", resp.StatusCode)
	}
	h.Eventually("A heard of B's write", func() bool { _, ok := sa.mem.lookup([]string{p.ID}); return !ok })
	if got := products(t, get(t, url, path))[0].PriceCents; got != 250 {
		t.Errorf("A answers price %d after B's write, want 250", got)
	}
	secondReadFree(t, h, sa, url, path)

	// A stock level, applied by whichever instance consumes it, reaches A.
	h.Publish("inventory-service", event.FromRequest("c", event.Metadata{}),
		&event.InventoryAdjusted{ProductID: p.ID, Delta: 5, Level: event.StockLevel{ProductID: p.ID, OnHand: 5, Available: 5, Version: 1}})
	h.Eventually("A answers 5 available", func() bool { return products(t, get(t, url, path))[0].Availability.Available == 5 })
	secondReadFree(t, h, sa, url, path)

	// A's LISTEN connection cut: A reads the database until it listens again.
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		var n int
		if err := sa.d.DB.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN `+changeChannel+`'`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("terminated %d listening backends (%v)", n, err)
		}
		h.Eventually("A lost its LISTEN", func() bool { return !sa.listening.Load() })
		before := databaseReads(sa)
		get(t, url, path)
		get(t, url, path)
		if sa.listening.Load() { // listening again already (a second at least): cut again
			if attempt == 5 {
				t.Fatal("A listened again within two reads five times")
			}
			continue
		}
		if got := databaseReads(sa) - before; got != 2 {
			t.Errorf("%v of 2 reads while not listening went to the database", got)
		}
		break
	}
	h.Eventually("A listens again", sa.listening.Load)
	secondReadFree(t, h, sa, url, path)
}

func TestMemory(t *testing.T) {
	trusted := true
	now := time.Now()
	m := newMemory(func() bool { return trusted }, func() time.Time { return now })
	p := Product{ID: "a", Status: StatusActive}
	read := func(e remembered) { m.end(m.Begin(e.p.ID), []remembered{e}) }
	remembered1 := func() (Product, bool) {
		rs, ok := m.lookup([]string{"a"})
		if !ok {
			return Product{}, false
		}
		return rs[0].p, true
	}

	// A read overtaken by a write or a reset is not remembered.
	for what, heard := range map[string]func(){
		"write": func() { m.Forget("a") },
		"level": func() { m.level(event.StockLevel{ProductID: "a", Version: 1}) },
		"reset": m.Reset,
	} {
		r := m.Begin("b", "a")
		heard()
		m.end(r, []remembered{{p: p}})
		if _, ok := remembered1(); ok {
			t.Errorf("a read overtaken by a %s was remembered", what)
		}
	}
	// Another product's write does not hold a read back.
	r := m.Begin("a")
	m.Forget("b")
	m.end(r, []remembered{{p: p, version: 2}})
	if _, ok := remembered1(); !ok {
		t.Fatal("a read was not remembered")
	}

	// Stock levels: the newest applies, as in the database.
	m.level(event.StockLevel{ProductID: "a", OnHand: 9, Available: 9, Version: 1})
	if got, _ := remembered1(); got.Availability.Available != 0 {
		t.Errorf("an older level applied: %+v", got.Availability)
	}
	m.level(event.StockLevel{ProductID: "a", OnHand: 4, Reserved: 1, Available: 3, Version: 3})
	if got, _ := remembered1(); got.Availability != (Availability{OnHand: 4, Reserved: 1, Available: 3, InStock: true}) {
		t.Errorf("the newer level gives %+v", got.Availability)
	}
	m.Forget("a")
	if _, ok := remembered1(); ok {
		t.Error("a written product is still remembered")
	}

	// Untrusted: nothing answered, nothing remembered.
	read(remembered{p: p})
	trusted = false
	if _, ok := remembered1(); ok {
		t.Error("answered while untrusted")
	}
	m.Reset()
	read(remembered{p: p})
	trusted = true
	if _, ok := remembered1(); ok {
		t.Error("a read made while untrusted was remembered")
	}

	// Read again after maxAge (a write not heard of: see maxAge).
	read(remembered{p: p})
	now = now.Add(maxAge - time.Millisecond)
	if _, ok := remembered1(); !ok {
		t.Error("not remembered within maxAge")
	}
	now = now.Add(time.Millisecond)
	if _, ok := remembered1(); ok {
		t.Error("remembered for maxAge")
	}

	// Bounded.
	for i := range maxRemembered + 10 {
		read(remembered{p: Product{ID: strconv.Itoa(i)}})
	}
	if n := m.Len(); n > maxRemembered {
		t.Errorf("%d products remembered, at most %d", n, maxRemembered)
	}
}
