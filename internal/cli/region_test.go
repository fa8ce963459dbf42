package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/internal/testenv"
)

// `eventmart region status` prints what the cluster shows of the
// replication into it: the role line, MirrorMaker's, and a line per
// checkpoints topic with its newest record.
func TestRegionStatus(t *testing.T) {
	brokers := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := region.CheckpointsTopic(fmt.Sprintf("S%d", time.Now().UnixNano()))
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	defer adm.DeleteTopics(context.Background(), topic)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("c"), Timestamp: at}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, nil, "region", "status", "--bus", "kafka://"+brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "role: ") || !strings.Contains(out, "\nmirrormaker: ") ||
		!strings.Contains(out, "checkpoints "+topic+": last 2026-03-04T05:06:07Z (") || !strings.Contains(out, " ago), 1 record(s)\n") {
		t.Errorf("region status printed:\n%s", out)
	}
}
