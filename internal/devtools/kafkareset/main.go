// Command kafkareset empties a development broker for the next benchmark run:
// it deletes every topic but Kafka's own (waiting until the broker no longer
// lists them, so a run can create them afresh) and every empty consumer group.
//
// deploy/scripts/bench-common.sh uses it to keep one broker for a whole
// sitting: a JVM just started spends its first minutes compiling itself, a
// cost no order pays on a broker that runs for weeks.
//
//	go run ./internal/devtools/kafkareset -brokers 127.0.0.1:18792
//
// Never point it at a broker whose data you want: it deletes everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated seed brokers")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	if *brokers == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "kafkareset: need -brokers host:port[,host:port...] and no positional arguments")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := reset(ctx, strings.Split(*brokers, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "kafkareset: %v\n", err)
		os.Exit(1)
	}
}

func reset(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID("eventmart-kafkareset"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	for {
		topics, err := adm.ListTopics(ctx) // Kafka's own (internal) topics are not listed
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		if len(topics) == 0 {
			break
		}
		res, err := adm.DeleteTopics(ctx, topics.Names()...)
		if err != nil {
			return fmt.Errorf("delete topics: %w", err)
		}
		if err := res.Error(); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topics: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics still listed: %s: %w", strings.Join(topics.Names(), ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Deleting a topic drops the groups' offsets on it; the groups themselves
	// are deleted once empty. A static member (EVENTMART_INSTANCE_ID) does not
	// leave its group when it stops, so its group stays until the member's
	// session times out: not an error, its offsets are gone with the topics.
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	if len(groups) == 0 {
		return nil
	}
	res, err := adm.DeleteGroups(ctx, groups.Groups()...)
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	for g, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.NonEmptyGroup) {
			return fmt.Errorf("delete group %s: %w", g, r.Err)
		}
	}
	return nil
}
