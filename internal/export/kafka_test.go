package export_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
	"github.com/eventmart/eventmart/internal/testenv"
)

// The export reads Kafka as it reads the embedded log: the same seeded
// events land in the same partitions (both partition by murmur2) and
// export into the same files, row for row.
func TestExportFromKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := context.Background()
	kb, err := kafka.Open(ctx, brokers, kafka.ReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	prefix := fmt.Sprintf("export-test-%d-", time.Now().UnixNano())
	var topics []bus.TopicConfig
	var sel []string
	for _, name := range businessTopics { // the topics Seed publishes to
		spec, _ := event.LookupTopic(event.Topic(name))
		topics = append(topics, bus.TopicConfig{Name: prefix + name, Partitions: spec.Partitions})
		sel = append(sel, prefix+name)
	}
	if _, err := kb.EnsureTopics(ctx, topics); err != nil {
		t.Fatal(err)
	}
	exporttest.SeedPrefixed(t, kb, 120, time.Minute, prefix)
	eb := exporttest.OpenBus(t)
	exporttest.Seed(t, eb, 120, time.Minute)

	kres := run(t, kb, filepath.Join(t.TempDir(), "k"), "parquet", export.Selection{Topics: sel})
	eres := run(t, eb, filepath.Join(t.TempDir(), "e"), "parquet", export.Selection{Topics: businessTopics})
	if kres.Manifest.Rows() == 0 || len(kres.Manifest.Files) != len(eres.Manifest.Files) {
		t.Fatalf("Kafka: %d files, %d rows; embedded: %d files, %d rows", len(kres.Manifest.Files), kres.Manifest.Rows(), len(eres.Manifest.Files), eres.Manifest.Rows())
	}
	for i, k := range kres.Manifest.Files {
		e := eres.Manifest.Files[i]
		if k.Topic != prefix+e.Topic || k.SHA256 == e.SHA256 /* published_at differs */ || k.Partition != e.Partition || !k.Hour.Equal(e.Hour) || k.Rows != e.Rows || k.FirstOffset != e.FirstOffset || k.LastOffset != e.LastOffset {
			t.Fatalf("file %d: Kafka %+v, embedded %+v", i, k, e)
		}
	}
}
