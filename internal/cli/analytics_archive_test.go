package cli

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// A backtest over events retention deleted reads them from the audit
// archive (export's reader, through the admin API) and gets the
// detections the live analytics service made from them, with their ids.
func TestAnalyticsBacktestReadsBeyondRetentionFromTheArchive(t *testing.T) {
	// The log's clock stands at t0 (plus shift), and the events' times are
	// t0: the archive keeps event times, the live service uses log times,
	// and here they are the same, so the detection ids must match.
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	b, shift := apptest.ShiftedLog(t, func() time.Time { return t0 }) // shift: how far the log's clock runs ahead
	// The events are on the log before the services start: the live
	// service's idle passes use the wall clock, a minute ahead of the
	// log's, and a pass between its start and its reading events
	// published after it would declare their partition idle past them
	// (then they are late, and nothing is detected — a busy machine made
	// that happen).
	var topics []bus.TopicConfig
	for _, ts := range event.Topics {
		topics = append(topics, bus.TopicConfig{Name: string(ts.Name), Partitions: ts.Partitions, Retention: ts.Retention})
	}
	if _, err := b.EnsureTopics(context.Background(), topics); err != nil {
		t.Fatal(err)
	}
	var evidence []string
	for i := range 3 {
		e, err := event.New("payment-service", event.Origin{}, &event.PaymentFailed{PaymentID: fmt.Sprint("p", i), OrderID: fmt.Sprint("o", i), UserID: "mallory", Code: "card-declined"})
		if err != nil {
			t.Fatal(err)
		}
		e.Timestamp = t0
		m, err := eventmsg.Encode(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		evidence = append(evidence, e.EventID)
	}
	h := apptest.Start(t, []service.Def{audit.Def(), analytics.Def()}, apptest.OnBus(b),
		apptest.Settings(map[string]string{"EVENTMART_ANALYTICS_GRACE": "1s"}))
	admin := h.Token("admin-1", "admin")
	var live []analytics.Detection
	h.Eventually("the live service detected the fraud and the audit service archived the payments", func() bool {
		var ds struct{ Detections []analytics.Detection }
		h.JSON("GET", "/api/v1/analytics/detections", admin, nil, 200, &ds)
		var ev struct{ Events []any }
		h.JSON("GET", "/api/v1/admin/events?type=PaymentFailed", admin, nil, 200, &ev)
		live = ds.Detections
		return len(live) == 1 && len(ev.Events) == len(evidence)
	})
	if live[0].Rule != "FraudSuspected" || !slices.Equal(slices.Sorted(slices.Values(live[0].Evidence)), slices.Sorted(slices.Values(evidence))) {
		t.Fatalf("live detections %+v, want FraudSuspected with evidence %v", live, evidence)
	}
	shift.Store(int64(7*event.Year + event.Day)) // payment-events keeps 7 years
	if _, err := b.ApplyRetention(context.Background()); err != nil {
		t.Fatal(err)
	}
	bt := analytics.Backtest{Rules: cep.StandardRules(time.Hour), Grace: time.Second, Until: t0.Add(time.Minute)}
	var warnings []string
	bt.Warn = func(s string) { warnings = append(warnings, s) }
	res, err := bt.Run(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 0 || len(res.Detections) != 0 || len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "--archive") {
		t.Fatalf("without the archive: %d records, %d detections, warnings %q; want none, and warnings that retention deleted some", res.Records, len(res.Detections), warnings)
	}

	c := &adminClient{base: h.Server.URL + "/api/v1", token: admin, http: http.DefaultClient}
	for _, from := range []time.Time{{}, t0.Add(-time.Hour)} {
		bt.From, bt.Archive = from, archiveClient{c}
		res, err = bt.Run(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if res.FromArchive != int64(len(evidence)) || res.Records != res.FromArchive {
			t.Errorf("from %v with the archive: %d records read, %d from the archive; want %d, all from it", from, res.Records, res.FromArchive, len(evidence))
		}
		if len(res.Detections) != 1 || res.Detections[0].ID != live[0].ID || !slices.Equal(res.Detections[0].Evidence, live[0].Evidence) {
			t.Errorf("from %v with the archive: detections %+v; want the live one %+v", from, res.Detections, live[0])
		}
	}
}
