package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/deadletter"
)

// dlq show prints a dead letter as the console does: headers as text (not
// base64 under Go field names) and the value as indented JSON (not an
// escaped string).
func TestDeadLetterShownDecoded(t *testing.T) {
	in := deadletter.DeadLetter{ID: 7, Group: "shipping", Topic: "payment-events", Partition: 3, Offset: 42, Key: "order-1",
		Value:   `{"id":"e1","type":"PaymentProcessed","payload":{"orderId":"order-1"}}`,
		Headers: []bus.Header{{Key: "ce_type", Value: []byte("PaymentProcessed")}, {Key: "bin", Value: []byte{0, 1}}},
		EventID: "e1", EventType: "PaymentProcessed", Error: "injected failure", Attempts: 2, Status: "dead",
		FirstFailedAt: time.Unix(0, 0).UTC(), DeadAt: time.Unix(1, 0).UTC()}
	// Through the API's JSON, as the command receives it.
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var d deadletter.DeadLetter
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeDeadLetter(&out, &d)
	s := out.String()
	for _, want := range []string{"dead letter 7 of shipping (dead)", "payment-events / partition 3 @ offset 42, key order-1",
		"  ce_type: PaymentProcessed\n", `  bin: "\x00\x01"`, "\n  \"type\": \"PaymentProcessed\",\n", "attempts:  2;", "error:     injected failure"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	for _, bad := range []string{base64.StdEncoding.EncodeToString([]byte("PaymentProcessed")), `\"`, `"Key"`} {
		if strings.Contains(s, bad) {
			t.Errorf("output has %q:\n%s", bad, s)
		}
	}
}
