package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
	reports "github.com/eventmart/eventmart/internal/report"
)

func TestExportImportReportUsageErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	for _, args := range [][]string{
		{"export"}, // no --out
		{"export", "--out", out, "--format", "csv"},
		{"export", "--out", out, "--topics", "orders"},
		{"export", "--out", out, "--from", "yesterday"},
		{"export", "--out", out, "--from", "2026-12-02", "--to", "2026-12-01"},
		{"export", "--out", out, "--from", "2026-12-01", "--to", "100"},
		{"export", "--out", out, "--from", "-3"},
		{"export", "--out", out, "--row-group-mb", "0"},
		{"export", "--out", out, "extra"},
		{"export", "--out", out, "--bogus"},
		{"import"},
		{"import", "a", "b"},
		{"report"},
		{"report", "weekly", "--date", "2026-12-01"},
		{"report", "daily"},
		{"report", "daily", "--date", "12/01/2026"},
		{"report", "daily", "--date", "2026-12-01", "--from", "2026-12-01", "--to", "2026-12-02"},
		{"report", "daily", "--from", "2026-12-02", "--to", "2026-12-01"},
		{"report", "daily", "--date", "2026-12-01", "--format", "xml"},
	} {
		_, err := runCLI(t, nil, args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	for _, p := range []string{out, "data"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a usage error created %s (%v)", p, err)
		}
	}
}

// Export and report only read: without a log they say so and create
// nothing; a dry-run import creates no data directory either.
func TestExportAndReportCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing-here")
	out := filepath.Join(t.TempDir(), "out")
	for _, args := range [][]string{
		{"export", "--data", dir, "--out", out},
		{"report", "daily", "--date", "2026-12-02", "--data", dir},
	} {
		_, stderr, err := runCLIStderr(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), "no event log at "+filepath.Join(dir, "eventlog.db")) {
			t.Errorf("%v: err = %v", args, err)
		}
		if !strings.Contains(stderr, "bus: embedded log "+filepath.Join(dir, "eventlog.db")) {
			t.Errorf("%v: stderr does not name the bus:\n%s", args, stderr)
		}
	}
	for _, p := range []string{dir, out} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("created %s (%v)", p, err)
		}
	}
}

// seedData writes a log of 240 orders placed a minute apart from
// 2026-12-01T22:00Z into a data directory and returns it.
func seedData(t *testing.T, orders int) string {
	t.Helper()
	data := t.TempDir()
	b := exporttest.OpenBusAt(t, filepath.Join(data, "eventlog.db"))
	exporttest.Seed(t, b, orders, time.Minute)
	b.Close() // the commands open it themselves
	return data
}

// The done-when of issue 15 without the live analytics (there is no
// analytics service yet): export a day, produce its report from the files
// and from the log, with the figures the seeded orders make; import the
// export into a fresh data directory and find the same orders, and again
// without changing them.
func TestExportReportImport(t *testing.T) {
	data := seedData(t, 240)
	day := filepath.Join(t.TempDir(), "day")
	stdout, stderr, err := runCLIStderr(t, nil, "export", "--data", data, "--out", day, "--from", "2026-12-02", "--to", "2026-12-03")
	if err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "bus: embedded log "+filepath.Join(data, "eventlog.db")) || !strings.Contains(stdout, "exported ") {
		t.Fatalf("export said:\n%s\n%s", stdout, stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress on a non-terminal has carriage returns:\n%q", stderr)
	}

	fromFiles, _, err := runCLIStderr(t, nil, "report", "daily", "--date", "2026-12-02", "--in", day, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	fromLog, _, err := runCLIStderr(t, nil, "report", "daily", "--date", "2026-12-02", "--data", data, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	if fromFiles != fromLog {
		t.Fatalf("the report from the files differs from the report from the log:\n%s\n%s", fromFiles, fromLog)
	}
	var d reports.Daily
	if err := json.Unmarshal([]byte(fromFiles), &d); err != nil {
		t.Fatal(err)
	}
	// Orders 120 to 239 were placed on 2026-12-02: even ones in EUR, odd in USD.
	want := map[string]*struct{ placed, value, confirmed, paid, revenue, refunds, refunded int64 }{"EUR": {}, "USD": {}}
	cancelled, dispatched := int64(0), int64(0)
	for i := 120; i < 240; i++ {
		w := want[map[bool]string{true: "EUR", false: "USD"}[i%2 == 0]]
		amount := int64(1+i%3) * (1000 + int64(i%13)*100)
		w.placed++
		w.value += amount
		if i%10 == 9 {
			cancelled++
			continue
		}
		w.confirmed++
		w.paid++
		w.revenue += amount
		dispatched++
		if i%7 == 3 {
			w.refunds++
			w.refunded += amount
		}
	}
	for _, o := range d.Orders {
		w := want[o.Currency]
		if o.Placed != w.placed || o.ValueCents != w.value || o.Confirmed != w.confirmed {
			t.Errorf("orders in %s: %+v, want %+v", o.Currency, o, *w)
		}
	}
	for i, m := range d.Revenue {
		if w := want[m.Currency]; m.Count != w.paid || m.AmountCents != w.revenue || d.Refunds[i].AmountCents != w.refunded || d.Refunds[i].Count != w.refunds {
			t.Errorf("revenue %+v, refunds %+v in %s, want %+v", m, d.Refunds[i], m.Currency, *w)
		}
	}
	if len(d.Orders) != 2 || len(d.Revenue) != 2 || len(d.Refunds) != 2 {
		t.Errorf("currencies: %+v", d)
	}
	if len(d.Cancellations) != 1 || d.Cancellations[0] != (reports.Count{Reason: "out-of-stock", Count: cancelled}) {
		t.Errorf("cancellations %+v, want %d out-of-stock", d.Cancellations, cancelled)
	}
	if d.Parcels.Shipped != dispatched || d.Parcels.Dispatched != dispatched || d.Parcels.Created != dispatched {
		t.Errorf("parcels %+v, want %d dispatched", d.Parcels, dispatched)
	}
	if len(d.TopProducts) != reports.TopN || d.TopProducts[0].Quantity < d.TopProducts[reports.TopN-1].Quantity {
		t.Errorf("top products %+v", d.TopProducts)
	}
	for _, format := range []string{"table", "csv"} {
		out, _, err := runCLIStderr(t, nil, "report", "daily", "--from", "2026-12-02", "--to", "2026-12-02T02:00:00Z", "--in", day, "--format", format)
		if err != nil || !strings.Contains(out, "out-of-stock") || !strings.Contains(out, "EUR") {
			t.Errorf("%s report: %v\n%s", format, err, out)
		}
	}

	// Import everything into a fresh data directory.
	all := filepath.Join(t.TempDir(), "all")
	if _, stderr, err := runCLIStderr(t, nil, "export", "--data", data, "--out", all, "--format", "jsonl"); err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	out, _, err := runCLIStderr(t, nil, "import", all, "--dry-run", "--data", fresh)
	if err != nil || !strings.Contains(out, "dry run: would import") || !strings.Contains(out, "OrderCreated") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a dry run created %s", fresh)
	}
	for range 2 { // the second import re-publishes every event: consumers skip them by id
		out, stderr, err := runCLIStderr(t, nil, "import", all, "--data", fresh)
		if err != nil || !strings.Contains(stderr, "bus: embedded log "+filepath.Join(fresh, "eventlog.db")) {
			t.Fatalf("import: %v\n%s\n%s", err, out, stderr)
		}
	}
	src, dst := openLog(t, data), openLog(t, fresh)
	srcOrders, srcKeys := rebuildOrders(t, src)
	dstOrders, dstKeys := rebuildOrders(t, dst)
	if len(srcOrders) != 240 || len(dstOrders) != len(srcOrders) {
		t.Fatalf("%d orders in the source, %d rebuilt from the import", len(srcOrders), len(dstOrders))
	}
	for id, o := range srcOrders {
		if dstOrders[id] != o {
			t.Errorf("order %s: %+v after the import, %+v in the source", id, dstOrders[id], o)
		}
	}
	for key, ids := range srcKeys {
		if !slices.Equal(dstKeys[key], ids) {
			t.Fatalf("key %s: events %v after the import, %v in the source: order per key or event ids lost", key, dstKeys[key], ids)
		}
	}
}

func openLog(t *testing.T, data string) bus.Bus {
	t.Helper()
	b, err := openExistingBus(context.Background(), Config{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// orderState is an order as its events leave it.
type orderState struct {
	Status     string
	TotalCents int64
	Currency   string
	Shipment   string
}

// rebuildOrders folds every order's events, each event id once as an
// idempotent consumer would, into its state, and lists the event ids of
// every key in log order.
func rebuildOrders(t *testing.T, b bus.Reader) (map[string]orderState, map[string][]string) {
	t.Helper()
	orders, keys, seen := map[string]orderState{}, map[string][]string{}, map[string]bool{}
	topics := []string{"order-events", "payment-events", "shipping-events", "inventory-events"}
	err := export.Scan(context.Background(), b, export.Selection{Topics: topics}, func(recs []*export.Record) error {
		for _, r := range recs {
			e := r.Envelope
			if seen[e.EventID] {
				continue
			}
			seen[e.EventID] = true
			keys[r.Topic+"/"+r.Key] = append(keys[r.Topic+"/"+r.Key], e.EventID)
			p, err := e.Payload()
			if err != nil {
				return err
			}
			switch p := p.(type) {
			case *event.OrderCreated:
				orders[p.OrderID] = orderState{Status: "created", TotalCents: p.TotalCents, Currency: p.Currency}
			case *event.OrderConfirmed:
				o := orders[p.OrderID]
				o.Status = "confirmed"
				orders[p.OrderID] = o
			case *event.OrderCancelled:
				o := orders[p.OrderID]
				o.Status = "cancelled: " + p.ReasonCode
				orders[p.OrderID] = o
			case *event.OrderShipped:
				o := orders[p.OrderID]
				o.Status, o.Shipment = "shipped", p.ShipmentID
				orders[p.OrderID] = o
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return orders, keys
}
