// Package bustest is the conformance suite every bus driver runs. It is
// written once against the bus.Bus contract; a driver's test calls Run with a
// factory for its bus.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
)

// Factory returns a bus for one test. It registers its own cleanup (closing
// the bus, accepting ErrClosed if the test closed it already) with t.
type Factory func(t *testing.T) bus.Bus

// Timeout bounds every wait of the suite: long enough for a rebalance on a
// real broker, short enough to fail a stuck test.
var Timeout = 60 * time.Second

// Run runs the conformance suite. Tests create their own uniquely named
// topics, so shared may hand out one bus to every test (as one process
// holds one log). own must return a bus no other test uses: the test of
// Close closes it.
func Run(t *testing.T, shared, own Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, bus.Bus)
		own  bool // the test closes its bus
	}{
		{"PublishAssignsPartitionOffsetTimestamp", testPublishAssigns, false},
		{"ConsumeKeepsOrderPerKey", testConsumeOrderPerKey, false},
		{"FailedBatchIsRedeliveredThenCommitted", testRedelivery, false},
		{"ResumeAfterGracefulShutdown", testResume, false},
		{"GroupsAreIndependent", testGroupsIndependent, false},
		{"MembersShareAndRebalanceWithoutLossOrRepeat", testRebalance, false},
		{"PartitionsAreProcessedConcurrently", testConcurrentPartitions, false},
		{"StartAtLatest", testStartAtLatest, false},
		{"LingerGathersSeparatePublishesIntoOneBatch", testLingerGathers, false},
		{"LingerHandsOverAloneRecordAtItsDeadline", testLingerDeadline, false},
		{"LingerZeroHandsOverAtOnce", testLingerZero, false},
		{"LingerEndsAtShutdownLeavingRecordsUncommitted", testLingerShutdown, false},
		{"ReadOffsetsAndTimestamps", testRead, false},
		{"FollowFromATimeThenAsAppended", testFollow, false},
		{"FollowMissesNothingAppendedAsItStarts", testFollowStart, false},
		{"EnsureTopicsIsIdempotentAndNeverShrinks", testEnsureTopics, false},
		{"LagCountsWhatTheGroupHasYetToRead", testLag, false},
		{"EndsListsSeveralTopicsAsOffsetsDoes", testEnds, false},
		{"UnknownTopic", testUnknownTopic, false},
		{"EveryCallAfterCloseFailsWithErrClosed", testClosed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.own {
				tc.fn(t, own(t))
			} else {
				tc.fn(t, shared(t))
			}
		})
	}
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "conf-" + prefix + "-" + hex.EncodeToString(b)
}

func newTopic(t *testing.T, b bus.Bus, partitions int32) string {
	t.Helper()
	name := uniqueName(strings.ToLower(strings.Split(t.Name(), "/")[1][:8]))
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: name, Partitions: partitions, Retention: time.Hour}}); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return name
}

// msg makes a message whose value is "key/seq" so order can be checked.
func msg(topic, key string, seq int) *bus.Message {
	return &bus.Message{
		Topic:   topic,
		Key:     []byte(key),
		Value:   []byte(fmt.Sprintf("%s/%d", key, seq)),
		Headers: []bus.Header{{Key: "eventType", Value: []byte("Test")}, {Key: "seq", Value: []byte(strconv.Itoa(seq))}},
	}
}

func publish(t *testing.T, b bus.Bus, msgs ...*bus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// publishKeys publishes n messages per key for keys k0..k(keys-1), in
// batches of 100, and returns them.
func publishKeys(t *testing.T, b bus.Bus, topic string, keys, n, firstSeq int) []*bus.Message {
	var all []*bus.Message
	for s := firstSeq; s < firstSeq+n; s++ {
		for k := 0; k < keys; k++ {
			all = append(all, msg(topic, "k"+strconv.Itoa(k), s))
		}
	}
	for i := 0; i < len(all); i += 100 {
		publish(t, b, all[i:min(i+100, len(all))]...)
	}
	return all
}

// collector records what a handler received, and lets a test wait for a
// condition on it without sleeping.
type collector struct {
	mu      sync.Mutex
	got     []*bus.Message
	count   map[string]int // value -> times received
	changed chan struct{}
}

func newCollector() *collector {
	return &collector{count: map[string]int{}, changed: make(chan struct{})}
}

func (c *collector) add(batch []*bus.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		c.got = append(c.got, m)
		c.count[string(m.Value)]++
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *collector) handler(ctx context.Context, batch []*bus.Message) error {
	c.add(batch)
	return nil
}

// waitFor fails the test unless cond holds within the suite timeout.
func (c *collector) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !c.waitUntil(Timeout, cond) {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("timed out waiting for %s (have %d messages)", what, len(c.got))
	}
}

// waitUntil blocks until cond holds (checked under the lock after every
// change) or d passes, and reports whether cond held.
func (c *collector) waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (c *collector) waitDistinct(t *testing.T, n int) {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("%d distinct messages", n), func() bool { return len(c.count) >= n })
}

func (c *collector) duplicates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d []string
	for v, n := range c.count {
		if n > 1 {
			d = append(d, fmt.Sprintf("%s×%d", v, n))
		}
	}
	return d
}

func (c *collector) has(value string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[value] > 0
}

// subscription runs Subscribe in the background; stop cancels it and
// checks it returned nil.
type subscription struct {
	cancel context.CancelFunc
	done   chan error
}

func subscribe(t *testing.T, b bus.Bus, group string, topics []string, h bus.Handler, opts ...bus.SubscribeOption) *subscription {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- b.Subscribe(ctx, group, topics, h, opts...) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *subscription) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Subscribe returned %v after cancel, want nil", err)
		}
	case <-time.After(Timeout):
		t.Errorf("Subscribe did not return after cancel")
	}
}

func testPublishAssigns(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 4)
	msgs := publishKeys(t, b, topic, 5, 10, 0)
	last := map[int32]int64{}
	for _, m := range msgs {
		if want := bus.PartitionFor(m.Key, 4); m.Partition != want {
			t.Fatalf("key %s went to partition %d, want %d", m.Key, m.Partition, want)
		}
		if prev, ok := last[m.Partition]; ok && m.Offset <= prev {
			t.Fatalf("partition %d offsets not increasing: %d after %d", m.Partition, m.Offset, prev)
		}
		last[m.Partition] = m.Offset
		if m.Timestamp.IsZero() || time.Since(m.Timestamp) > time.Minute {
			t.Fatalf("timestamp %v not set", m.Timestamp)
		}
	}
}

func testConsumeOrderPerKey(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 8)
	sent := publishKeys(t, b, topic, 40, 50, 0)
	c := newCollector()
	subscribe(t, b, uniqueName("g"), []string{topic}, c.handler)
	c.waitDistinct(t, len(sent))
	if d := c.duplicates(); len(d) > 0 {
		t.Errorf("duplicates without any failure: %v", d[:min(5, len(d))])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[string]int{}
	byValue := map[string]*bus.Message{}
	for _, m := range sent {
		byValue[string(m.Value)] = m
	}
	for _, m := range c.got {
		k, seq, _ := strings.Cut(string(m.Value), "/")
		if want := strconv.Itoa(next[k]); seq != want {
			t.Fatalf("key %s: got seq %s, want %s", k, seq, want)
		}
		next[k]++
		s := byValue[string(m.Value)]
		if m.Topic != topic || string(m.Key) != k || m.Partition != s.Partition || m.Offset != s.Offset ||
			!m.Timestamp.Equal(s.Timestamp) || m.Header("seq") != seq || m.Header("eventType") != "Test" {
			t.Fatalf("consumed %+v differs from published %+v", m, s)
		}
	}
}

func testRedelivery(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 2)
	group := uniqueName("g")
	sent := publishKeys(t, b, topic, 4, 5, 0)
	c := newCollector()
	var mu sync.Mutex
	failures := 0
	poison := string(sent[7].Value)
	h := func(ctx context.Context, batch []*bus.Message) error {
		for _, m := range batch {
			mu.Lock()
			fail := string(m.Value) == poison && failures < 3
			if fail {
				failures++
			}
			mu.Unlock()
			if fail {
				return errors.New("transient failure")
			}
		}
		c.add(batch)
		return nil
	}
	s := subscribe(t, b, group, []string{topic}, h, bus.RetryBackoff(time.Millisecond, 10*time.Millisecond))
	c.waitDistinct(t, len(sent))
	mu.Lock()
	if failures != 3 {
		t.Errorf("handler failed %d times, want 3", failures)
	}
	mu.Unlock()
	s.stop(t)

	// Everything consumed was committed: a new member of the group sees
	// only what is published next.
	c2 := newCollector()
	subscribe(t, b, group, []string{topic}, c2.handler)
	sentinel := msg(topic, "k0", 1000)
	publish(t, b, sentinel)
	c2.waitFor(t, "sentinel", func() bool { return c2.count[string(sentinel.Value)] > 0 })
	c2.mu.Lock()
	defer c2.mu.Unlock()
	if len(c2.got) != 1 {
		t.Errorf("after commit got %d messages, want only the sentinel", len(c2.got))
	}
}

func testResume(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 3)
	group := uniqueName("g")
	first := publishKeys(t, b, topic, 10, 10, 0)
	c1 := newCollector()
	s := subscribe(t, b, group, []string{topic}, c1.handler, bus.MaxBatch(7))
	c1.waitDistinct(t, len(first))
	s.stop(t)

	second := publishKeys(t, b, topic, 10, 10, 10)
	c2 := newCollector()
	subscribe(t, b, group, []string{topic}, c2.handler)
	c2.waitDistinct(t, len(second))
	sentinel := msg(topic, "k3", 999)
	publish(t, b, sentinel)
	c2.waitFor(t, "sentinel", func() bool { return c2.count[string(sentinel.Value)] > 0 })
	for _, m := range first {
		if c2.has(string(m.Value)) {
			t.Fatalf("%s redelivered after graceful shutdown", m.Value)
		}
	}
	if d := append(c1.duplicates(), c2.duplicates()...); len(d) > 0 {
		t.Errorf("duplicates: %v", d)
	}
}

func testGroupsIndependent(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 2)
	sent := publishKeys(t, b, topic, 3, 20, 0)
	a, z := newCollector(), newCollector()
	subscribe(t, b, uniqueName("ga"), []string{topic}, a.handler)
	subscribe(t, b, uniqueName("gz"), []string{topic}, z.handler)
	a.waitDistinct(t, len(sent))
	z.waitDistinct(t, len(sent))
}

func testRebalance(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 6)
	group := uniqueName("g")
	all := newCollector()
	a, z := newCollector(), newCollector()
	both := func(c *collector) bus.Handler {
		return func(ctx context.Context, batch []*bus.Message) error {
			c.add(batch)
			all.add(batch)
			return nil
		}
	}
	sa := subscribe(t, b, group, []string{topic}, both(a))
	n := len(publishKeys(t, b, topic, 30, 10, 0))
	all.waitDistinct(t, n)

	subscribe(t, b, group, []string{topic}, both(z))
	// Keep publishing until the new member has been handed partitions. On
	// Kafka that takes a heartbeat interval or two (seconds), however
	// fast the loop runs: bound it by time, not by rounds.
	seq := 10
	for deadline := time.Now().Add(Timeout); ; seq += 10 {
		n += len(publishKeys(t, b, topic, 30, 10, seq))
		all.waitDistinct(t, n)
		z.mu.Lock()
		joined := len(z.got) > 0
		z.mu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second member never received partitions")
		}
	}
	sa.stop(t) // graceful leave: z takes over every partition
	a.mu.Lock()
	leftWith := len(a.got)
	a.mu.Unlock()
	n += len(publishKeys(t, b, topic, 30, 10, seq+10))
	all.waitDistinct(t, n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) != leftWith {
		t.Errorf("member kept consuming after it left")
	}
	if d := all.duplicates(); len(d) > 0 {
		t.Errorf("graceful rebalances repeated %d messages: %v", len(d), d[:min(5, len(d))])
	}
}

func testConcurrentPartitions(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 2)
	var keys [2]string
	for i := 0; keys[0] == "" || keys[1] == ""; i++ {
		k := "key" + strconv.Itoa(i)
		keys[bus.PartitionFor([]byte(k), 2)] = k
	}
	entered := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var once [2]sync.Once
	h := func(ctx context.Context, batch []*bus.Message) error {
		p := batch[0].Partition
		once[p].Do(func() { close(entered[p]) })
		// Each partition's first batch waits for the other partition's:
		// only concurrent processing lets both finish.
		select {
		case <-entered[1-p]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(Timeout):
			return errors.New("other partition never processed concurrently")
		}
	}
	publish(t, b, msg(topic, keys[0], 0), msg(topic, keys[1], 0))
	subscribe(t, b, uniqueName("g"), []string{topic}, h)
	for p := range entered {
		select {
		case <-entered[p]:
		case <-time.After(Timeout):
			t.Fatalf("partition %d never handled", p)
		}
	}
}

func testStartAtLatest(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 2)
	old := publishKeys(t, b, topic, 2, 5, 0)
	c := newCollector()
	subscribe(t, b, uniqueName("g"), []string{topic}, c.handler, bus.StartAtLatest())
	// When the subscription has taken its start position is not observable,
	// so publish probes until one arrives; a probe published before that is
	// legitimately missed.
	for i := 0; !c.waitUntil(500*time.Millisecond, func() bool { return len(c.got) > 0 }); i++ {
		if i == 100 {
			t.Fatal("no probe arrived")
		}
		publish(t, b, msg(topic, "probe", i))
	}
	for _, m := range old {
		if c.has(string(m.Value)) {
			t.Fatalf("StartAtLatest delivered old message %s", m.Value)
		}
	}
}

// batches records the sizes of the handler calls, and their messages.
type batches struct {
	*collector
	sizes []int // guarded by collector.mu
}

func newBatches() *batches { return &batches{collector: newCollector()} }

func (c *batches) handler(ctx context.Context, batch []*bus.Message) error {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(batch))
	c.mu.Unlock()
	c.add(batch)
	return nil
}

func (c *batches) calls() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sizes)
}

// publishEach publishes n messages of key, seq from first on, one Publish
// call each.
func publishEach(t *testing.T, b bus.Bus, topic, key string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		publish(t, b, msg(topic, key, i))
	}
}

// A linger far longer than the test: only MaxBatch records hand a batch
// over, so records published one call at a time arrive as one handler
// call, whatever the machine's speed.
func testLingerGathers(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 1)
	c := newBatches()
	subscribe(t, b, uniqueName("g"), []string{topic}, c.handler, bus.MaxBatch(5), bus.Linger(10*Timeout))
	publishEach(t, b, topic, "k", 0, 5)
	c.waitDistinct(t, 5) // maybe before the member consumed: it then finds all five at once
	publishEach(t, b, topic, "k", 5, 5)
	c.waitDistinct(t, 10) // while it consumes
	if got := c.calls(); !slices.Equal(got, []int{5, 5}) {
		t.Errorf("handler calls of %v records, want [5 5]: five separate publishes each time, MaxBatch 5, a long linger", got)
	}
}

// A record alone is handed over once the linger has passed: the wait for
// MaxBatch records does not go on for ever.
func testLingerDeadline(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 1)
	c := newBatches()
	subscribe(t, b, uniqueName("g"), []string{topic}, c.handler, bus.MaxBatch(1000), bus.Linger(50*time.Millisecond))
	handsOverAlone(t, b, topic, c, "each record handed over after the linger, the second published after the first was handled")
}

// Without a linger (the default and Linger(0)) a record is handed over
// without waiting for MaxBatch, nor for a deadline.
func testLingerZero(t *testing.T, b bus.Bus) {
	for _, opts := range [][]bus.SubscribeOption{{bus.MaxBatch(1000)}, {bus.MaxBatch(1000), bus.Linger(0)}, {bus.MaxBatch(1000), bus.Linger(-time.Second)}} {
		topic := newTopic(t, b, 1)
		c := newBatches()
		s := subscribe(t, b, uniqueName("g"), []string{topic}, c.handler, opts...)
		handsOverAlone(t, b, topic, c, fmt.Sprintf("%d options, no linger", len(opts)))
		s.stop(t)
	}
}

// handsOverAlone publishes a record to topic, the only one, and a second
// once c's handler got the first, and checks that the handler got each
// in a call of its own (why says why it should have).
func handsOverAlone(t *testing.T, b bus.Bus, topic string, c *batches, why string) {
	t.Helper()
	publish(t, b, msg(topic, "k", 0))
	c.waitDistinct(t, 1)
	publish(t, b, msg(topic, "k", 1))
	c.waitDistinct(t, 2)
	if got := c.calls(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("handler calls of %v records, want [1 1]: %s", got, why)
	}
}

// A shutdown does not wait a linger out (stop fails after Timeout; the
// linger is twice that), hands nothing over and commits nothing: the
// group's next member gets the records.
func testLingerShutdown(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 1)
	group := uniqueName("g")
	c := newBatches()
	first := make([]*bus.Message, 10)
	for i := range first {
		first[i] = msg(topic, "k", i)
	}
	s := subscribe(t, b, group, []string{topic}, c.handler, bus.MaxBatch(10), bus.Linger(2*Timeout))
	publish(t, b, first...)
	c.waitDistinct(t, 10) // the member consumes: the next two records find it lingering
	publishEach(t, b, topic, "k", 10, 2)
	s.stop(t)
	if got := c.calls(); !slices.Equal(got, []int{10}) {
		t.Errorf("handler calls of %v records before the shutdown, want [10]: the last two were still lingering", got)
	}
	next := newBatches()
	subscribe(t, b, group, []string{topic}, next.handler)
	next.waitDistinct(t, 2)
	sentinel := msg(topic, "k", 100)
	publish(t, b, sentinel)
	next.waitFor(t, "sentinel", func() bool { return next.count[string(sentinel.Value)] > 0 })
	next.mu.Lock()
	defer next.mu.Unlock()
	for _, m := range next.got {
		if m.Value == nil || (string(m.Value) != "k/10" && string(m.Value) != "k/11" && string(m.Value) != "k/100") {
			t.Errorf("the next member got %s, want only k/10, k/11 (left uncommitted by the shutdown) and the sentinel", m.Value)
		}
	}
	if len(next.got) != 3 {
		t.Errorf("the next member got %d messages, want 3", len(next.got))
	}
}

func testRead(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 1)
	ctx := context.Background()
	first := publishKeys(t, b, topic, 1, 20, 0)
	// Make sure the next messages get a strictly later millisecond.
	boundary := first[len(first)-1].Timestamp.Truncate(time.Millisecond).Add(time.Millisecond)
	for time.Now().Before(boundary.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond) // letting the clock pass a millisecond, not synchronising
	}
	second := publishKeys(t, b, topic, 1, 10, 20)

	offs, err := b.Offsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 1 || offs[0].Start != first[0].Offset || offs[0].End != second[9].Offset+1 {
		t.Fatalf("Offsets = %+v, want start %d end %d", offs, first[0].Offset, second[9].Offset+1)
	}
	got, err := b.Read(ctx, topic, 0, first[10].Offset, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("Read returned %d messages, want 5", len(got))
	}
	for i, m := range got {
		if string(m.Value) != string(first[10+i].Value) || m.Offset != first[10+i].Offset || m.Header("seq") != strconv.Itoa(10+i) {
			t.Fatalf("Read[%d] = %s@%d, want %s@%d", i, m.Value, m.Offset, first[10+i].Value, first[10+i].Offset)
		}
	}
	if end, err := b.Read(ctx, topic, 0, offs[0].End, 5); err != nil || len(end) != 0 {
		t.Fatalf("Read at end = %d messages, %v; want none", len(end), err)
	}
	after, err := b.OffsetAfter(ctx, topic, boundary)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].Start != second[0].Offset {
		t.Fatalf("OffsetAfter(boundary) = %+v, want %d", after, second[0].Offset)
	}
	future, err := b.OffsetAfter(ctx, topic, time.Now().Add(time.Hour))
	if err != nil || future[0].Start != offs[0].End {
		t.Fatalf("OffsetAfter(future) = %+v, %v; want end %d", future, err, offs[0].End)
	}
}

// testEnds: Ends answers, for several topics at once, the end offsets
// Offsets answers for each, and fails on an unknown topic.
func testEnds(t *testing.T, b bus.Bus) {
	el, ok := b.(bus.EndLister)
	if !ok {
		t.Skip("the driver has no Ends")
	}
	one, two := newTopic(t, b, 1), newTopic(t, b, 3)
	publishKeys(t, b, one, 1, 2, 0)
	publishKeys(t, b, two, 3, 4, 0)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ends, err := el.Ends(ctx, []string{one, two})
	if err != nil {
		t.Fatalf("Ends: %v", err)
	}
	total := int64(0)
	for _, topic := range []string{one, two} {
		offs, err := b.Offsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(ends[topic]) != len(offs) {
			t.Fatalf("Ends[%s] = %v, Offsets = %+v", topic, ends[topic], offs)
		}
		for _, o := range offs {
			if ends[topic][o.Partition] != o.End {
				t.Errorf("Ends[%s][%d] = %d, Offsets' end %d", topic, o.Partition, ends[topic][o.Partition], o.End)
			}
			total += o.End
		}
	}
	if total != 2+12 {
		t.Errorf("%d messages in all by the end offsets, want 14", total)
	}
	// bus.Ends of a reader without Ends (a wrapper) asks Offsets instead:
	// the same answer.
	fallback, err := bus.Ends(ctx, offsetsOnly{b}, []string{one, two})
	if err != nil || !maps.EqualFunc(fallback, ends, maps.Equal) {
		t.Errorf("bus.Ends without the driver's Ends = %v, %v; want %v", fallback, err, ends)
	}
	if _, err := el.Ends(ctx, []string{one, "no-such-topic-" + one}); !errors.Is(err, bus.ErrUnknownTopic) {
		t.Errorf("Ends of an unknown topic: %v, want ErrUnknownTopic", err)
	}
}

// offsetsOnly hides a driver's optional capabilities (EndLister) behind
// its Bus methods.
type offsetsOnly struct{ bus.Bus }

// testFollow: a follower gets every partition's messages from since on,
// not older ones, then each message appended later, in order per
// partition, and returns nil when its context ends.
func testFollow(t *testing.T, b bus.Bus) {
	f, ok := b.(bus.Follower)
	if !ok {
		t.Skip("the driver has no Follow")
	}
	topic := newTopic(t, b, 2)
	old := publishKeys(t, b, topic, 1, 5, 0)
	boundary := old[len(old)-1].Timestamp.Truncate(time.Millisecond).Add(time.Millisecond)
	for time.Now().Before(boundary.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond) // letting the clock pass a millisecond, not synchronising
	}
	recent := publishKeys(t, b, topic, 1, 3, 5) // same key, same partition as old

	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Follow(ctx, topic, boundary, c.add) }()
	c.waitFor(t, "the messages since the boundary", func() bool { return len(c.got) >= len(recent) })
	// Appended while following, to both partitions (keys k0..k9).
	later := publishKeys(t, b, topic, 10, 2, 100)
	c.waitFor(t, "the messages appended while following", func() bool { return len(c.got) >= len(recent)+len(later) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow returned %v after cancel, want nil", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Follow did not return after cancel")
	}

	for _, m := range old {
		if c.has(string(m.Value)) {
			t.Fatalf("%s, older than since, was followed", m.Value)
		}
	}
	if d := c.duplicates(); len(d) > 0 {
		t.Fatalf("followed twice: %v", d)
	}
	partitions := map[int32]bool{}
	next := map[int32]int64{}
	for _, m := range c.got {
		if prev, ok := next[m.Partition]; ok && m.Offset < prev {
			t.Fatalf("partition %d: offset %d followed after %d", m.Partition, m.Offset, prev-1)
		}
		next[m.Partition] = m.Offset + 1
		partitions[m.Partition] = true
	}
	for _, m := range slices.Concat(recent, later) {
		if !c.has(string(m.Value)) {
			t.Fatalf("%s was not followed", m.Value)
		}
	}
	if len(partitions) != 2 {
		t.Fatalf("followed partitions %v, want both", partitions)
	}
	if err := f.Follow(context.Background(), uniqueName("missing"), time.Time{}, c.add); !errors.Is(err, bus.ErrUnknownTopic) {
		t.Fatalf("Follow of a missing topic = %v, want ErrUnknownTopic", err)
	}
}

// testFollowStart: what is appended to a new, empty topic while a
// follower starts on it is followed, every time. (Kafka's follower once
// took the end offset from a second listing when the by-time one found
// nothing, and skipped a message appended between the two.) Messages are
// published one at a time from the moment Follow is called, so some land
// while it positions itself.
func testFollowStart(t *testing.T, b bus.Bus) {
	f, ok := b.(bus.Follower)
	if !ok {
		t.Skip("the driver has no Follow")
	}
	const rounds, perRound = 8, 20
	test, stop := context.WithCancel(context.Background())
	defer stop() // a failed round's follower
	for r := range rounds {
		topic := newTopic(t, b, 2)
		c := newCollector()
		ctx, cancel := context.WithCancel(test)
		done := make(chan error, 1)
		since := time.Now()
		go func() { done <- f.Follow(ctx, topic, since, c.add) }()
		var sent []*bus.Message
		for i := range perRound {
			m := msg(topic, "k"+strconv.Itoa(i%4), r*perRound+i)
			publish(t, b, m)
			sent = append(sent, m)
		}
		c.waitFor(t, fmt.Sprintf("round %d: the %d messages appended as the follower started", r, perRound), func() bool {
			return len(c.count) >= perRound
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Follow returned %v after cancel, want nil", r, err)
		}
		for _, m := range sent {
			if !c.has(string(m.Value)) {
				t.Fatalf("round %d: %s was not followed", r, m.Value)
			}
		}
	}
}

func testEnsureTopics(t *testing.T, b bus.Bus) {
	ctx := context.Background()
	name := uniqueName("ensure")
	apply := func(parts int32, ret time.Duration, want string) {
		t.Helper()
		ch, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: name, Partitions: parts, Retention: ret}})
		if err != nil {
			t.Fatalf("EnsureTopics(%d, %v): %v", parts, ret, err)
		}
		if len(ch) != 1 || ch[0].Topic != name || ch[0].Action != want {
			t.Fatalf("EnsureTopics(%d, %v) = %+v, want action %q", parts, ret, ch, want)
		}
	}
	apply(3, time.Hour, "created")
	apply(3, time.Hour, "unchanged")
	// Published to before growing, so the producer has the topic's three
	// partitions in its view when it grows.
	publish(t, b, msg(name, "before-growth", 0))
	apply(5, time.Hour, "partitions increased")
	apply(5, 2*time.Hour, "retention updated")
	apply(2, 2*time.Hour, "drift")
	topics, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(topics, func(c bus.TopicConfig) bool { return c.Name == name })
	if i < 0 || topics[i].Partitions != 5 || topics[i].Retention != 2*time.Hour {
		t.Fatalf("Topics() has %+v, want 5 partitions and 2h", topics[max(i, 0)])
	}
	if !slices.IsSortedFunc(topics, func(a, b bus.TopicConfig) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Topics() not sorted by name")
	}
	// Right after EnsureTopics returns, a key of a new partition goes there.
	key := "after-growth"
	for i := 0; bus.PartitionFor([]byte(key), 5) < 3; i++ {
		key = "after-growth-" + strconv.Itoa(i)
	}
	m := msg(name, key, 0)
	publish(t, b, m)
	if m.Partition != bus.PartitionFor(m.Key, 5) {
		t.Errorf("after growth key went to partition %d, want %d of 5", m.Partition, bus.PartitionFor(m.Key, 5))
	}
}

// Every call that names a topic fails with ErrUnknownTopic for a topic
// that does not exist, and Subscribe returns instead of waiting for it.
func testUnknownTopic(t *testing.T, b bus.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	missing := uniqueName("missing")
	checks := map[string]error{
		"Publish": b.Publish(ctx, msg(missing, "k", 0)),
		"Subscribe": b.Subscribe(ctx, uniqueName("g"), []string{missing},
			func(context.Context, []*bus.Message) error { return nil }),
	}
	_, checks["Read"] = b.Read(ctx, missing, 0, 0, 10)
	_, checks["Offsets"] = b.Offsets(ctx, missing)
	_, checks["OffsetAfter"] = b.OffsetAfter(ctx, missing, time.Now().Add(-time.Hour))
	_, checks["Lag"] = b.Lag(ctx, uniqueName("g"), []string{missing})
	for op, err := range checks {
		if !errors.Is(err, bus.ErrUnknownTopic) {
			t.Errorf("%s of a missing topic = %v, want ErrUnknownTopic", op, err)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("the calls waited out the suite timeout: %v", ctx.Err())
	}
}

// After Close every call fails with ErrClosed, Close included, even on a
// topic that exists; none waits.
func testClosed(t *testing.T, b bus.Bus) {
	topic := newTopic(t, b, 2)
	publish(t, b, msg(topic, "k", 0))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	checks := map[string]error{
		"Close":   b.Close(),
		"Publish": b.Publish(ctx, msg(topic, "k", 1)),
		"Subscribe": b.Subscribe(ctx, uniqueName("g"), []string{topic},
			func(context.Context, []*bus.Message) error { return nil }),
	}
	_, checks["Read"] = b.Read(ctx, topic, 0, 0, 10)
	_, checks["Offsets"] = b.Offsets(ctx, topic)
	_, checks["OffsetAfter"] = b.OffsetAfter(ctx, topic, time.Now().Add(-time.Hour))
	_, checks["EnsureTopics"] = b.EnsureTopics(ctx, []bus.TopicConfig{{Name: topic, Partitions: 2, Retention: time.Hour}})
	_, checks["Topics"] = b.Topics(ctx)
	_, checks["Lag"] = b.Lag(ctx, uniqueName("g"), []string{topic})
	for op, err := range checks {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("the calls waited out the suite timeout: %v", ctx.Err())
	}
}

func testLag(t *testing.T, b bus.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	topic := newTopic(t, b, 3)
	group := uniqueName("g")
	total := func(want int64, committed bool) {
		t.Helper()
		lags, err := b.Lag(ctx, group, []string{topic})
		if err != nil {
			t.Fatalf("Lag: %v", err)
		}
		if len(lags) != 3 {
			t.Fatalf("Lag returned %d partitions, want 3: %+v", len(lags), lags)
		}
		var sum int64
		for i, l := range lags {
			if l.Topic != topic || l.Partition != int32(i) {
				t.Fatalf("lag %d is %s/%d, want %s/%d (sorted)", i, l.Topic, l.Partition, topic, i)
			}
			if committed && l.Committed != l.End-l.Lag {
				t.Errorf("partition %d: committed %d, end %d, lag %d", i, l.Committed, l.End, l.Lag)
			}
			if !committed && l.Committed != -1 {
				t.Errorf("partition %d: committed %d before the group consumed, want -1", i, l.Committed)
			}
			sum += l.Lag
		}
		if sum != want {
			t.Errorf("total lag %d, want %d: %+v", sum, want, lags)
		}
	}
	sent := publishKeys(t, b, topic, 6, 5, 0)
	total(int64(len(sent)), false)

	c := newCollector()
	s := subscribe(t, b, group, []string{topic}, c.handler)
	c.waitDistinct(t, len(sent))
	s.stop(t) // a graceful stop commits what was handled
	total(0, true)

	more := publishKeys(t, b, topic, 3, 1, 100)
	total(int64(len(more)), true)
}
