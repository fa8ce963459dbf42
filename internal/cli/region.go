package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/internal/settings"
)

// regionCmd switches the primary role between two regions replicated by
// MirrorMaker 2 (docs/regions.md):
//
//	eventmart region status   --bus kafka://B
//	eventmart region failover --bus kafka://B [--from kafka://A] [--source-alias A] [--stop-replication CMD] [--db postgres://B]
//	eventmart region failback --bus kafka://A --from kafka://B [--source-alias B] [--stop-replication CMD] [--db postgres://A --db-from postgres://B]
//
// --bus names the region to promote. Both switches can be run again after
// a crash midway: every step is idempotent.
func regionCmd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("eventmart region", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var cfg Config
	env.Settings.Flag(fs, settings.Bus)
	from := fs.String("from", "", "kafka://host:port of the region to demote (failover: fenced if reachable; failback: required, the region copied from)")
	alias := fs.String("source-alias", "", "MirrorMaker's alias of the --from region (its checkpoints topic is ALIAS.checkpoints.internal); default A for failover, B for failback")
	stop := fs.String("stop-replication", "", "shell command that stops MirrorMaker into this region, e.g. 'deploy/scripts/mirror.sh stop'; unset: stop it yourself (the switch waits until no heartbeat arrives)")
	db := fs.String("db", "", "postgres:// URL of this region's PostgreSQL, a hot standby of the other region's: promoted (pg_promote) before the services write; unset: no replicated database")
	dbFrom := fs.String("db-from", "", "failback: postgres:// URL of the --from region's PostgreSQL, whose WAL --db must have replayed before it is promoted")
	catchUp := fs.Duration("catch-up-timeout", 2*time.Minute, "failback: how long to wait for the region to hold every record of --from")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	cfg = config(env.Settings)
	if len(pos) != 1 || (pos[0] != "status" && pos[0] != "failover" && pos[0] != "failback") {
		return usageError{"region: want status, failover or failback (eventmart region -h)"}
	}
	to, err := regionClient(cfg.Bus)
	if err != nil {
		return err
	}
	defer to.Close()
	if pos[0] == "status" {
		// A region whose broker is down would be retried for ever.
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rep, err := region.ReadReplication(sctx, to, time.Now())
		if err != nil {
			return err
		}
		printReplication(env, rep)
		return nil
	}
	sw := region.Switch{
		To: to, By: "eventmart region " + pos[0], Topics: replicatedTopics(),
		Progress: func(format string, args ...any) { fmt.Fprintf(env.Stderr, format+"\n", args...) },
	}
	switch pos[0] {
	case "failover":
		sw.SourceAlias, sw.Fence = "A", true
	case "failback":
		if *from == "" {
			return usageError{"region failback: --from kafka://host:port (the region to copy from and demote) is required"}
		}
		sw.SourceAlias, sw.CatchUp, sw.CatchUpTimeout = "B", true, *catchUp
	}
	if *db != "" {
		sw.Database = &region.Database{URL: *db, Upstream: *dbFrom, CatchUpTimeout: *catchUp}
	}
	if *alias != "" {
		sw.SourceAlias = *alias
	}
	if *from != "" {
		fc, err := regionClient(*from)
		if err != nil {
			return err
		}
		defer fc.Close()
		sw.From = fc
	}
	if *stop != "" {
		sw.StopReplication = func(ctx context.Context) error {
			c := exec.CommandContext(ctx, "sh", "-c", *stop)
			c.Stdout, c.Stderr = env.Stderr, env.Stderr
			c.Env = os.Environ()
			if err := c.Run(); err != nil {
				return fmt.Errorf("%s: %w", *stop, err)
			}
			return nil
		}
	}
	start := time.Now()
	fmt.Fprintf(env.Stderr, "%s: promoting the region of %s\n", pos[0], cfg.Bus)
	res, err := sw.Run(ctx)
	if err != nil {
		return err
	}
	var moved int
	var reread int64
	for _, g := range res.Groups {
		moved += g.Moved
		reread += g.Re
	}
	fmt.Fprintf(env.Stdout, "%s done in %s: %d consumer groups, %d partitions moved to their checkpoints (at most %d records re-read), this region is primary\n",
		pos[0], time.Since(start).Round(time.Millisecond), len(res.Groups), moved, reread)
	return nil
}

// regionClient is a franz-go client of the cluster at a kafka:// URL.
func regionClient(u string) (*kgo.Client, error) {
	if !strings.HasPrefix(u, "kafka://") {
		return nil, usageError{fmt.Sprintf("region: %q: want kafka://host:port (regions are Kafka clusters replicated by MirrorMaker)", u)}
	}
	brokers, err := kafka.ParseURL(u)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("eventmart-region"))
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	return cl, nil
}

// replicatedTopics are the topics MirrorMaker copies: ADR-0006's table
// (deploy/scripts/mirror.sh: every *-events topic).
func replicatedTopics() []string {
	var out []string
	for _, t := range adrTopics() {
		out = append(out, t.Name)
	}
	return out
}

// printReplication prints what `eventmart region status` reads of a
// region's cluster: the same as the console's Region tab shows of it
// (GET /api/v1/admin/region, "cluster").
func printReplication(env *Env, rep region.Replication) {
	if rep.Role == nil {
		fmt.Fprintln(env.Stdout, "role: none recorded (each process follows EVENTMART_REGION_ROLE)")
	} else {
		fmt.Fprintf(env.Stdout, "role: %s (set %s by %s)\n", rep.Role.Role, rep.Role.At.Format(time.RFC3339), rep.Role.By)
	}
	tail := func(t region.Tail) string {
		if t.Last == nil {
			return fmt.Sprintf("%s: empty", t.Topic)
		}
		return fmt.Sprintf("%s: last %s (%.1f s ago), %d record(s)", t.Topic, t.Last.Format(time.RFC3339), *t.AgeSeconds, t.Records)
	}
	switch {
	case rep.Heartbeats == nil:
		fmt.Fprintln(env.Stdout, "mirrormaker: absent (no heartbeats topic: nothing replicates into this region)")
	default:
		fmt.Fprintf(env.Stdout, "mirrormaker: %s (heartbeats %s)\n", rep.MirrorMaker, tail(*rep.Heartbeats))
	}
	for _, t := range rep.Checkpoints {
		fmt.Fprintf(env.Stdout, "checkpoints %s\n", tail(t))
	}
	for _, t := range rep.OffsetSyncs {
		fmt.Fprintf(env.Stdout, "offset syncs %s\n", tail(t))
	}
}
