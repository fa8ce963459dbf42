package webhook_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/apptest"
)

// TestOfficialVerifierAcceptsEveryDelivery delivers the events of an
// order's life to a receiver that verifies each with the official
// Standard Webhooks verifier (npm standardwebhooks, pinned in
// testdata/receiver/package-lock.json), across a secret rotation. It needs
// node and npm (and the npm registry, or a cache); without them it skips,
// except under CI, where it fails.
func TestOfficialVerifierAcceptsEveryDelivery(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		needTool(t, "node")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		needTool(t, "npm")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "receiver.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "receiver", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	node := exec.Command("node", "receiver.mjs")
	node.Dir, node.Stderr = dir, os.Stderr
	stdin, err := node.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Process.Kill(); node.Wait() })
	type line struct {
		Port                                     int
		ID, Signature, EventID, EventType, Error string
		OK, SecretSet                            bool
	}
	lines := make(chan line, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	next := func() line {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the receiver exited")
			}
			return l
		case <-time.After(apptest.Timeout):
			t.Fatal("timed out waiting for the receiver")
		}
		return line{}
	}
	port := next().Port

	h := start(t, loopback)
	ep := create(h, "http://127.0.0.1:"+strconv.Itoa(port)+"/webhooks")
	customer := event.Customer{UserID: "cust-1", Email: event.Plain("ann@example.com"), Name: event.Plain("Ann")}
	life := []event.Payload{
		&event.OrderCreated{OrderID: "o-life", Customer: customer, TotalCents: 2500, Currency: "EUR"},
		&event.PaymentProcessed{OrderID: "o-life", PaymentID: "p-1", UserID: "cust-1", AmountCents: 2500, Currency: "EUR", AuthCode: "A1"},
		&event.OrderConfirmed{OrderID: "o-life", UserID: "cust-1"},
		&event.ShippingCreated{OrderID: "o-life", UserID: "cust-1", ShipmentID: "s-1", Carrier: "DHL", TrackingNumber: "T-1", Address: event.PlainAddress(event.Address{})},
		&event.OrderShipped{OrderID: "o-life", UserID: "cust-1", ShipmentID: "s-1", TrackingNumber: "T-1"},
	}
	io.WriteString(stdin, ep.Secret+"\n")
	if l := next(); !l.SecretSet {
		t.Fatalf("receiver: %+v", l)
	}
	want := map[string]event.Type{}
	for _, p := range life[:3] {
		e := h.Publish("order-service", origin, p)[0]
		want[e.EventID] = e.EventType
	}
	for range want { // payment-events and order-events are consumed independently: any order
		if l := next(); !l.OK || want[l.EventID] != event.Type(l.EventType) {
			t.Errorf("receiver: %+v, want one of %v verified", l, want)
		}
	}
	// Rotated with an overlap: deliveries carry both signatures, so the
	// receiver still holding the old secret verifies them, and once given
	// the new secret it verifies them too.
	admin := h.Token("admin-1", "admin")
	var rotated struct{ Secret string }
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/rotate", admin, map[string]string{"overlap": "1h"}, 200, &rotated)
	e := h.Publish("shipping-service", origin, life[3])[0]
	if l := next(); !l.OK || l.EventID != e.EventID {
		t.Errorf("with the old secret: %+v", l)
	}
	io.WriteString(stdin, rotated.Secret+"\n")
	if l := next(); !l.SecretSet {
		t.Fatalf("receiver: %+v", l)
	}
	e = h.Publish("order-service", origin, life[4])[0]
	if l := next(); !l.OK || l.EventID != e.EventID || l.EventType != "OrderShipped" {
		t.Errorf("with the new secret: %+v", l)
	}
	// The verifier does check: rotated without overlap, the receiver's
	// secret no longer signs, and it refuses the test message.
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/rotate", admin, map[string]string{"overlap": "0s"}, 200, nil)
	var res struct{ Delivered bool }
	h.JSON("POST", "/api/v1/webhooks/endpoints/"+ep.ID+"/test", admin, nil, 200, &res)
	if l := next(); l.OK || res.Delivered {
		t.Errorf("a message signed with another secret was accepted: %+v", l)
	}
}
func needTool(t *testing.T, tool string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI", tool)
	}
	t.Skipf("needs %s", tool)
}
