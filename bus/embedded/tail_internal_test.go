package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
)

func withTailBytes(n int) Option { return func(c *config) { c.tailBytes = n } }

func openTail(t *testing.T, path string, tailBytes int, opts ...Option) *Bus {
	t.Helper()
	b, err := Open(path, append(opts, withTailBytes(tailBytes), CheckRetentionEvery(0))...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tailOf returns topic's partition p tail, as Read finds it.
func tailOf(b *Bus, topic string, p int32) *tail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[topic].tails[p]
}

// tailState is what the tail holds: its first offset, record count, bytes,
// and the bytes its records add up to.
func tailState(tl *tail) (first int64, n, bytes, counted int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i := range tl.n {
		counted += tailSize(tl.ring[(tl.head+i)%len(tl.ring)])
	}
	return tl.first, tl.n, tl.bytes, counted
}

// variedMessage is the i-th of a mix of nil, empty and filled keys, values
// and headers, of sizes up to size bytes.
func variedMessage(topic string, i, size int) *bus.Message {
	m := &bus.Message{Topic: topic, Value: make([]byte, rand.IntN(size+1))}
	for j := range m.Value {
		m.Value[j] = byte('a' + (i+j)%26)
	}
	switch i % 4 {
	case 0:
		m.Key = []byte(fmt.Sprintf("key-%d", i))
		m.Headers = []bus.Header{{Key: "eventType", Value: []byte("OrderCreated")}, {Key: "empty", Value: []byte{}}, {Key: "nil"}}
	case 1:
		m.Key, m.Value = []byte{}, []byte{}
	case 2:
		m.Value = nil
		m.Headers = []bus.Header{{Key: "eventId", Value: []byte(fmt.Sprint(i))}}
	case 3:
		m.Key = []byte("k")
	}
	return m
}

// checkReads compares, from every offset of topic's partition 0, Read with
// the same read from SQLite, and reports how many reads the tail served.
func checkReads(t *testing.T, b *Bus, topic string, limit int) (fromTail int) {
	t.Helper()
	ctx := context.Background()
	offs, err := b.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _, _ := tailState(tailOf(b, topic, 0))
	for from := offs[0].Start - 1; from <= offs[0].End; from++ {
		got, err := b.Read(ctx, topic, 0, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		want, err := b.readLog(ctx, b.topics[topic], 0, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(withoutMemos(got), want)) {
			t.Fatalf("Read(%d, %d) = %d messages, SQLite %d; first differing: %s", from, limit, len(got), len(want), firstDiff(got, want))
		}
		if from >= first && from < offs[0].End {
			again, _ := b.Read(ctx, topic, 0, from, limit)
			if again[0] != got[0] || got[0].Memo == nil {
				t.Fatalf("Read(%d) at or after the tail's first record %d was not served from the tail (with a memo for its decoded envelope)", from, first)
			}
			fromTail++
		}
	}
	return fromTail
}

// withoutMemos returns copies of msgs without their memos (which reads
// from SQLite, each one's own, do not have).
func withoutMemos(msgs []*bus.Message) []*bus.Message {
	out := make([]*bus.Message, len(msgs))
	for i, m := range msgs {
		c := *m
		c.Memo = nil
		out[i] = &c
	}
	return out
}

func firstDiff(got, want []*bus.Message) string {
	got = withoutMemos(got)
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			return fmt.Sprintf("tail %#v, SQLite %#v", *got[i], *want[i])
		}
	}
	return "none in the common length"
}

// A read served from the tail returns what the same read from SQLite
// does (offsets, keys, values, headers, timestamps; nil and empty alike);
// a read older than the tail falls back to SQLite; after a restart the
// tail is empty and every read comes from SQLite, the same again.
func TestTailReadsEqualSQLiteReads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	b := openTail(t, path, 16<<10)
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 120; i += 3 {
		if err := b.Publish(ctx, variedMessage("t", i, 600), variedMessage("t", i+1, 600), variedMessage("t", i+2, 600)); err != nil {
			t.Fatal(err)
		}
	}
	first, n, _, _ := tailState(tailOf(b, "t", 0))
	if first == 0 || n == 0 {
		t.Fatalf("tail holds %d records from %d; want the latest ones only, the bound being smaller than the partition", n, first)
	}
	for _, limit := range []int{1, 7, 500} {
		if served := checkReads(t, b, "t", limit); served != n {
			t.Fatalf("limit %d: %d reads served from the tail, want %d (one per record it holds)", limit, served, n)
		}
	}
	b.Close()

	b = openTail(t, path, 16<<10)
	defer b.Close()
	if first, n, _, _ := tailState(tailOf(b, "t", 0)); first != 120 || n != 0 {
		t.Fatalf("tail after reopen holds %d records from %d; want none from 120", n, first)
	}
	if served := checkReads(t, b, "t", 10); served != 0 {
		t.Fatalf("after reopen %d reads were served from the empty tail", served)
	}
	if err := b.Publish(ctx, variedMessage("t", 120, 600)); err != nil {
		t.Fatal(err)
	}
	if served := checkReads(t, b, "t", 10); served != 1 {
		t.Fatalf("after reopen and a publish %d reads were served from the tail, want 1", served)
	}
}

// The tail never holds more than its bound, counts its bytes exactly,
// ends at the partition's end, and a record larger than the bound empties
// it (that record is read from SQLite).
func TestTailStaysWithinItsBound(t *testing.T) {
	ctx := context.Background()
	const limit = 4 << 10
	b := openTail(t, filepath.Join(t.TempDir(), "log.db"), limit)
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	tl := tailOf(b, "t", 0)
	maxSeen := 0
	for i := range 200 {
		batch := []*bus.Message{variedMessage("t", i, 1500)}
		if i%10 == 0 {
			batch = append(batch, variedMessage("t", i+1, 1500), variedMessage("t", i+2, 1500))
		}
		if err := b.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		first, n, bytes, counted := tailState(tl)
		if bytes > limit || bytes != counted {
			t.Fatalf("after publish %d the tail counts %d bytes (its records %d); bound %d", i, bytes, counted, limit)
		}
		if end := batch[len(batch)-1].Offset + 1; first+int64(n) != end {
			t.Fatalf("tail ends at %d, the partition at %d", first+int64(n), end)
		}
		maxSeen = max(maxSeen, bytes)
	}
	if maxSeen < limit/2 {
		t.Fatalf("the tail never held more than %d bytes of its %d", maxSeen, limit)
	}
	huge := &bus.Message{Topic: "t", Key: []byte("huge"), Value: make([]byte, limit)}
	if err := b.Publish(ctx, huge); err != nil {
		t.Fatal(err)
	}
	if first, n, bytes, _ := tailState(tl); n != 0 || bytes != 0 || first != huge.Offset+1 {
		t.Fatalf("after a record over the bound the tail holds %d records (%d bytes) from %d; want none from %d", n, bytes, first, huge.Offset+1)
	}
	got, err := b.Read(ctx, "t", 0, huge.Offset, 10)
	if err != nil || len(got) != 1 || len(got[0].Value) != limit {
		t.Fatalf("Read of the huge record = %d messages, %v", len(got), err)
	}
	checkReads(t, b, "t", 5)
}

// Retention deletes records the tail holds: a read afterwards returns none
// of them, from the tail or from SQLite.
func TestTailDropsWhatRetentionDeletes(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := openTail(t, filepath.Join(t.TempDir(), "log.db"), 64<<10, Clock(clock))
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 1, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if i == 10 {
			mu.Lock()
			now = now.Add(2 * time.Hour)
			mu.Unlock()
		}
		if err := b.Publish(ctx, &bus.Message{Topic: "t", Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if first, n, _, _ := tailState(tailOf(b, "t", 0)); first != 0 || n != 20 {
		t.Fatalf("tail holds %d records from %d, want all 20", n, first)
	}
	if deleted, err := b.ApplyRetention(ctx); err != nil || deleted != 10 {
		t.Fatalf("ApplyRetention = %d, %v; want 10 deleted", deleted, err)
	}
	for _, from := range []int64{0, 5, 10} {
		got, err := b.Read(ctx, "t", 0, from, 100)
		if err != nil || len(got) != 10 || got[0].Offset != 10 || string(got[0].Value) != "10" {
			t.Fatalf("Read(%d) after retention = %d messages (first %+v), %v; want offsets 10 to 19", from, len(got), got, err)
		}
	}
	if first, n, _, _ := tailState(tailOf(b, "t", 0)); first != 10 || n != 10 {
		t.Fatalf("tail after retention holds %d records from %d, want 10 from 10", n, first)
	}
}

// Publishers, consumer groups, direct readers, retention and a topic's
// growth at once (run with -race): every group sees every record of every
// partition once, in order, with the value it was published with.
func TestTailUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	b := openTail(t, filepath.Join(t.TempDir(), "log.db"), 8<<10)
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 2, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	const publishers, each = 4, 150
	var pubs sync.WaitGroup
	for w := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; i < each; i += 3 {
				var batch []*bus.Message
				for j := range 3 {
					k := fmt.Sprintf("w%d-%d", w, i+j)
					batch = append(batch, &bus.Message{Topic: "t", Key: []byte(k), Value: []byte(k), Headers: []bus.Header{{Key: "h", Value: []byte(k)}}})
				}
				if err := b.Publish(ctx, batch...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	grown := make(chan struct{})
	go func() {
		defer close(grown)
		if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 4, Retention: time.Hour}}); err != nil {
			t.Error(err)
		}
	}()
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Add(1)
	go func() { // a direct reader and retention (which deletes nothing here) beside the groups
		defer side.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.ApplyRetention(ctx); err != nil {
				t.Error(err)
				return
			}
			msgs, err := b.Read(ctx, "t", 0, 0, 50)
			if err != nil {
				t.Error(err)
				return
			}
			for i, m := range msgs {
				if m.Offset != int64(i) || string(m.Value) != m.Header("h") {
					t.Errorf("direct read: message %d at offset %d with value %q, header %q", i, m.Offset, m.Value, m.Header("h"))
					return
				}
			}
		}
	}()
	type seen struct {
		mu   sync.Mutex
		next map[int32]int64
		n    int
	}
	groups := make([]*seen, 3)
	sctx, cancel := context.WithCancel(ctx)
	var subs sync.WaitGroup
	all := make(chan struct{}, len(groups))
	for gi := range groups {
		s := &seen{next: map[int32]int64{}}
		groups[gi] = s
		subs.Add(1)
		go func() {
			defer subs.Done()
			err := b.Subscribe(sctx, fmt.Sprint("g", gi), []string{"t"}, func(_ context.Context, batch []*bus.Message) error {
				s.mu.Lock()
				defer s.mu.Unlock()
				for _, m := range batch {
					if m.Offset != s.next[m.Partition] || string(m.Value) != string(m.Key) || m.Header("h") != string(m.Key) {
						t.Errorf("group g%d: %d@%d key %q value %q; want offset %d", gi, m.Partition, m.Offset, m.Key, m.Value, s.next[m.Partition])
					}
					s.next[m.Partition] = m.Offset + 1
					s.n++
				}
				if s.n == publishers*each {
					all <- struct{}{}
				}
				return nil
			}, bus.MaxBatch(7))
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for range groups {
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			t.Fatal("groups did not see every record within 30s")
		}
	}
	cancel()
	subs.Wait()
	pubs.Wait()
	<-grown
	close(stop)
	side.Wait()
	for gi, s := range groups {
		if s.n != publishers*each {
			t.Errorf("group g%d saw %d records, want %d", gi, s.n, publishers*each)
		}
	}
}

// Consumer groups reading the same records from the tail get the same
// decoded envelope and payload (eventmsg.DecodeShared, DecodeRecord): one
// decode per process.
func TestGroupsShareTheEnvelopeDecodedFromTheTail(t *testing.T) {
	ctx := context.Background()
	b := openTail(t, filepath.Join(t.TempDir(), "log.db"), defaultTailBytes)
	defer b.Close()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "payment-events", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		e, err := event.New("payment-service", event.FromRequest(event.NewID(), event.Metadata{}), &event.PaymentProcessed{OrderID: fmt.Sprint("o-", i), PaymentID: "p"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eventmsg.Encode(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	type pos struct {
		p   int32
		off int64
	}
	decoded := [2]map[pos]*event.Envelope{{}, {}}
	payloads := [2]map[pos]event.Payload{{}, {}}
	var mu sync.Mutex // partitions are handled concurrently
	for g := range decoded {
		sctx, cancel := context.WithCancel(ctx)
		err := b.Subscribe(sctx, fmt.Sprint("g", g), []string{"payment-events"}, func(_ context.Context, batch []*bus.Message) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range batch {
				e, err := eventmsg.DecodeShared(m)
				if err != nil {
					return err
				}
				decoded[g][pos{m.Partition, m.Offset}] = e
				r, err := eventmsg.DecodeRecord(m)
				if err != nil {
					return err
				}
				if payloads[g][pos{m.Partition, m.Offset}], err = r.Payload(); err != nil {
					return err
				}
			}
			if len(decoded[g]) == n {
				cancel()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, e := range decoded[0] {
		if decoded[1][k] != e {
			t.Fatalf("record %d@%d: the groups got different envelopes", k.p, k.off)
		}
		if p := payloads[0][k]; p == nil || payloads[1][k] != p {
			t.Fatalf("record %d@%d: the groups got different payloads", k.p, k.off)
		}
	}
}
