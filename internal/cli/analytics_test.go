package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

// TestAnalyticsBacktest: over an embedded log holding three declined
// payments of one customer, the backtest prints one FraudSuspected with
// the three as evidence, and says what it read.
func TestAnalyticsBacktest(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCLI(t, nil, "topics", "apply", "--data", dir); err != nil {
		t.Fatal(err)
	}
	b, err := embedded.Open(filepath.Join(dir, "eventlog.db"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*bus.Message
	var ids []string
	for i := range 3 {
		e, err := event.New("payment-service", event.Origin{}, &event.PaymentFailed{PaymentID: fmt.Sprint("p", i), OrderID: fmt.Sprint("o", i), UserID: "mallory", Code: "card-declined"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		msgs, ids = append(msgs, m), append(ids, e.EventID)
	}
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Until a moment past the grace after the records, as the live
	// service's clock would be by then (now, the default, would leave them
	// within the grace: pending).
	until := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	out, stderr, err := runCLIStderr(t, nil, "analytics", "backtest", "--data", dir, "--until", until)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var d analytics.Detection
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &d) != nil || d.Rule != "FraudSuspected" || d.Key != "mallory" || len(d.Evidence) != 3 {
		t.Fatalf("backtest printed %q (stderr %q), want one FraudSuspected of mallory", out, stderr)
	}
	for _, id := range ids {
		if !strings.Contains(lines[0], id) {
			t.Errorf("evidence %v lacks %s", d.Evidence, id)
		}
	}
	if !strings.Contains(stderr, "backtest: 3 records read (0 from the audit archive), 0 late, 1 detections; FraudSuspected 1;") {
		t.Errorf("summary: %s", stderr)
	}
	if _, err := runCLI(t, nil, "analytics", "backtest", "--data", dir, "--from", "2026-12-01", "--from-offset", "3"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("--from with --from-offset: %v", err)
	}
}
