package e2e

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/testenv"
)

func TestEmbedded(t *testing.T) {
	dir := t.TempDir()
	s := startEmbedded(t, dir)
	defer s.stopAll()
	runScenarios(t, newShop(s))
}

func TestDistributed(t *testing.T) {
	brokers := testenv.Kafka(t)
	pg := testenv.Postgres(t)
	resetTopics(t, brokers)
	// A fresh set of databases per run: the URL's database name prefixes them.
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/e2e" + time.Now().Format("150405")
	dir := t.TempDir()
	s := startDistributed(t, brokers[0], u.String(), dir, startOTLP(t)...)
	defer s.stopAll()
	sh := newShop(s)
	runScenarios(t, sh)
	for _, sc := range distributedScenarios {
		t.Run(sc.name, func(t *testing.T) {
			sc.run(t, &shop{system: &system{t: t, base: s.base, procs: s.procs, mode: s.mode}, admin: sh.admin}, brokers)
		})
	}
}

// resetTopics deletes the ADR topics (and with them the consumer groups'
// offsets) left by earlier runs on the test broker; the services create
// them again at start.
func resetTopics(t *testing.T, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, ts := range event.Topics {
		names = append(names, string(ts.Name))
	}
	if _, err := adm.DeleteTopics(ctx, names...); err != nil {
		t.Fatal(err)
	}
	for {
		topics, err := adm.ListTopics(ctx, names...)
		if err != nil {
			t.Fatal(err)
		}
		gone := true
		for _, td := range topics {
			if td.Err == nil {
				gone = false
			}
		}
		if gone {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("topics not deleted")
		case <-time.After(100 * time.Millisecond): // polling the broker's metadata
		}
	}
}
