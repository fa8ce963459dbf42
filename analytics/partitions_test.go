package analytics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/internal/service"
)

// offsetsFailFirst is a bus whose first failures Offsets calls fail, as a
// Kafka cluster does while a dead broker's partitions have no leader yet.
type offsetsFailFirst struct {
	bus.Bus
	failures int
}

func (b *offsetsFailFirst) Offsets(ctx context.Context, topic string) ([]bus.PartitionOffsets, error) {
	if b.failures > 0 {
		b.failures--
		return nil, errors.New("unable to dial: connection refused")
	}
	return b.Bus.Offsets(ctx, topic)
}

// The engine's start lists the partitions again while the bus is briefly
// unreachable, instead of failing (and with it the process).
func TestPartitionsAskedAgainWhileTheBusIsUnreachable(t *testing.T) {
	ctx := context.Background()
	b, err := embedded.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var topics []bus.TopicConfig
	for _, name := range Topics() {
		topics = append(topics, bus.TopicConfig{Name: name, Partitions: 2})
	}
	if _, err := b.EnsureTopics(ctx, topics); err != nil {
		t.Fatal(err)
	}
	flaky := &offsetsFailFirst{Bus: b, failures: 2}
	s := &Service{d: service.Deps{Bus: flaky, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	parts, err := s.partitions(ctx)
	if err != nil {
		t.Fatalf("partitions: %v", err)
	}
	if flaky.failures != 0 {
		t.Fatalf("%d failures left: the start did not go through them", flaky.failures)
	}
	if want := 2 * len(Topics()); len(parts) != want {
		t.Errorf("%d partitions, want %d", len(parts), want)
	}
}
