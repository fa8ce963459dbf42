package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/bustest"
	"github.com/eventmart/eventmart/bus/embedded"
)

func open(t *testing.T, path string, opts ...embedded.Option) *embedded.Bus {
	t.Helper()
	b, err := embedded.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	// One log shared by every test, as in production where one process
	// holds one log; tests use their own topics. The test of Close gets a
	// log of its own.
	b := open(t, filepath.Join(t.TempDir(), "log.db"))
	t.Cleanup(func() { b.Close() })
	bustest.Run(t, func(t *testing.T) bus.Bus { return b }, func(t *testing.T) bus.Bus {
		own := open(t, filepath.Join(t.TempDir(), "log.db"))
		t.Cleanup(func() { own.Close() })
		return own
	})
}

func TestReopenKeepsTopicsOffsetsAndCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	ctx := context.Background()
	b := open(t, path)
	if _, err := b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "t", Partitions: 2, Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	m := &bus.Message{Topic: "t", Key: []byte("k"), Value: []byte("v0")}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- b.Subscribe(sctx, "g", []string{"t"}, func(ctx context.Context, batch []*bus.Message) error {
			for _, m := range batch {
				got <- string(m.Value)
			}
			return nil
		})
	}()
	if v := <-got; v != "v0" {
		t.Fatalf("got %s", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = open(t, path)
	defer b.Close()
	topics, _ := b.Topics(ctx)
	if len(topics) != 1 || topics[0] != (bus.TopicConfig{Name: "t", Partitions: 2, Retention: time.Hour}) {
		t.Fatalf("topics after reopen: %+v", topics)
	}
	m2 := &bus.Message{Topic: "t", Key: []byte("k"), Value: []byte("v1")}
	if err := b.Publish(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if m2.Offset != m.Offset+1 || m2.Partition != m.Partition {
		t.Fatalf("offset after reopen %d/%d, want %d/%d", m2.Partition, m2.Offset, m.Partition, m.Offset+1)
	}
	sctx, cancel = context.WithCancel(ctx)
	go func() {
		done <- b.Subscribe(sctx, "g", []string{"t"}, func(ctx context.Context, batch []*bus.Message) error {
			for _, m := range batch {
				got <- string(m.Value)
			}
			return nil
		})
	}()
	v := <-got
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v != "v1" {
		t.Fatalf("after reopen the group got %s, want only v1 (v0 was committed)", v)
	}
}

func TestRetentionDeletesOldMessagesAndKeepsOffsets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b := open(t, filepath.Join(t.TempDir(), "log.db"), embedded.Clock(clock), embedded.CheckRetentionEvery(0))
	defer b.Close()
	ctx := context.Background()
	b.EnsureTopics(ctx, []bus.TopicConfig{{Name: "short", Partitions: 1, Retention: 7 * 24 * time.Hour}, {Name: "forever", Partitions: 1}})
	pub := func(topic string, n int) {
		for i := 0; i < n; i++ {
			if err := b.Publish(ctx, &bus.Message{Topic: topic, Key: []byte("k"), Value: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub("short", 10)
	pub("forever", 10)
	advance(6 * 24 * time.Hour)
	pub("short", 5)
	if n, err := b.ApplyRetention(ctx); err != nil || n != 0 {
		t.Fatalf("ApplyRetention before expiry deleted %d, %v", n, err)
	}
	advance(2 * 24 * time.Hour) // the first 10 are now 8 days old, the next 5 two days
	n, err := b.ApplyRetention(ctx)
	if err != nil || n != 10 {
		t.Fatalf("ApplyRetention deleted %d, %v; want 10", n, err)
	}
	offs, _ := b.Offsets(ctx, "short")
	if offs[0].Start != 10 || offs[0].End != 15 {
		t.Fatalf("short offsets %+v, want start 10 end 15", offs)
	}
	msgs, _ := b.Read(ctx, "short", 0, 0, 100)
	if len(msgs) != 5 || msgs[0].Offset != 10 {
		t.Fatalf("read from 0 after retention: %d messages from %d", len(msgs), msgs[0].Offset)
	}
	if offs, _ := b.Offsets(ctx, "forever"); offs[0].Start != 0 || offs[0].End != 10 {
		t.Fatalf("topic without retention lost messages: %+v", offs)
	}
}

// TestAcknowledgedSurviveKill9 runs a publisher in a child process, kills it
// with SIGKILL mid-stream, and checks every acknowledged message is in the
// log, in order per key.
func TestAcknowledgedSurviveKill9(t *testing.T) {
	if os.Getenv("EMBEDDED_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "log.db")
	b := open(t, path)
	if _, err := b.EnsureTopics(context.Background(), []bus.TopicConfig{{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedSurviveKill9$")
	cmd.Env = append(os.Environ(), "EMBEDDED_CRASH_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{} // key -> highest acknowledged seq
	lines := bufio.NewScanner(out)
	n := 0
	for lines.Scan() {
		key, seq, ok := strings.Cut(lines.Text(), " ")
		if !ok {
			continue
		}
		s, _ := strconv.Atoi(seq)
		acked[key] = max(acked[key], s)
		if n++; n == 3000 {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	for lines.Scan() { // drain what the child wrote before dying; those were acknowledged too
		key, seq, ok := strings.Cut(lines.Text(), " ")
		if ok {
			s, _ := strconv.Atoi(seq)
			acked[key] = max(acked[key], s)
		}
	}
	cmd.Wait()
	if n < 3000 {
		t.Fatalf("child acknowledged only %d messages", n)
	}

	b = open(t, path)
	defer b.Close()
	ctx := context.Background()
	next := map[string]int{}
	for p := int32(0); p < 4; p++ {
		for off := int64(0); ; {
			msgs, err := b.Read(ctx, "orders", p, off, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				s, _ := strconv.Atoi(string(m.Value))
				if s != next[string(m.Key)] {
					t.Fatalf("key %s: seq %d after %d", m.Key, s, next[string(m.Key)]-1)
				}
				next[string(m.Key)]++
				off = m.Offset + 1
			}
		}
	}
	for key, s := range acked {
		if next[key] <= s {
			t.Errorf("key %s: acknowledged up to %d, log has up to %d", key, s, next[key]-1)
		}
	}
	t.Logf("%d keys, %d acknowledgements read before the kill", len(acked), n)
}

// crashChild publishes forever from 8 goroutines, printing "key seq" after
// each acknowledged message, until it is killed.
func crashChild() {
	b, err := embedded.Open(os.Getenv("EMBEDDED_CRASH_CHILD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{fmt.Sprintf("g%d-a", g), fmt.Sprintf("g%d-b", g)}
			for seq := 0; ; seq++ {
				var msgs []*bus.Message
				for _, k := range keys {
					msgs = append(msgs, &bus.Message{Topic: "orders", Key: []byte(k), Value: []byte(strconv.Itoa(seq))})
				}
				if err := b.Publish(context.Background(), msgs...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				for _, k := range keys {
					fmt.Fprintf(w, "%s %d\n", k, seq)
				}
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
