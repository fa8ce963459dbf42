package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/region"
)

// adrTopics is ADR-0006's topic table as bus topic configurations.
func adrTopics() []bus.TopicConfig {
	out := make([]bus.TopicConfig, len(event.Topics))
	for i, t := range event.Topics {
		out[i] = bus.TopicConfig{Name: string(t.Name), Partitions: t.Partitions, Retention: t.Retention}
	}
	return out
}

// wantTopics is the topic table b should have: ADR-0006's, except that
// the embedded log creates a topic with at most cfg.LogPartitions
// partitions and keeps those a topic already has (up to the ADR's count).
// In one process each service has one database writer, so partitions beyond
// that buy no parallelism there, only smaller batches per consumer: more
// transactions per order.
func wantTopics(ctx context.Context, cfg Config, b bus.Bus) ([]bus.TopicConfig, error) {
	if !embeddedBus(cfg) {
		return adrTopics(), nil
	}
	have, err := b.Topics(ctx)
	if err != nil {
		return nil, err
	}
	return wantOf(cfg, have), nil
}

// regionTopic is the topic of the region's role record (region.Topic) as
// region.SetRole creates it: one partition, kept forever. Created empty
// by topics apply on Kafka (no role recorded: EVENTMART_REGION_ROLE
// holds), it lets every process's region.Watch wait on it with a fetch
// the broker holds until a role is recorded, instead of looking for the
// missing topic every second (a metadata request a second per process,
// most of what an idle process asked of the broker besides its fetches).
// Only topics apply creates it, not serve: a process whose credentials
// may not create topics still starts on a cluster without it.
var regionTopic = bus.TopicConfig{Name: region.Topic, Partitions: 1}

// wantOf is wantTopics for a bus that has the topics have.
func wantOf(cfg Config, have []bus.TopicConfig) []bus.TopicConfig {
	want := adrTopics()
	if !embeddedBus(cfg) {
		return want
	}
	had := map[string]int32{}
	for _, t := range have {
		had[t.Name] = t.Partitions
	}
	for i, t := range want {
		want[i].Partitions = min(t.Partitions, max(int32(max(cfg.LogPartitions, 1)), had[t.Name]))
	}
	return want
}

func topicsCmd(ctx context.Context, env *Env, args []string) error {
	var cfg Config
	pos, err := parseFlags(env, "topics", args, &cfg, busFlags)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{fmt.Sprintf("topics: unexpected arguments %v", pos[1:])}
	}
	sub := ""
	if len(pos) == 1 {
		sub = pos[0]
	}
	if sub != "" && sub != "apply" {
		return usageError{fmt.Sprintf("topics: unknown subcommand %q (want nothing or apply)", sub)}
	}
	fmt.Fprintln(env.Stderr, "bus:", busName(cfg))
	var b bus.Bus
	if sub == "apply" {
		b, err = openBus(ctx, cfg)
	} else {
		b, err = openExistingBus(ctx, cfg) // listing only reads: it creates no log, nor a data directory
	}
	if err != nil {
		return err
	}
	defer b.Close()
	if sub == "apply" {
		return applyTopics(ctx, env, cfg, b)
	}
	return listTopics(ctx, env, cfg, b)
}

func applyTopics(ctx context.Context, env *Env, cfg Config, b bus.Bus) error {
	want, err := wantTopics(ctx, cfg, b)
	if err != nil {
		return err
	}
	if !embeddedBus(cfg) {
		want = append(want, regionTopic)
	}
	changes, err := b.EnsureTopics(ctx, want)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tACTION\tDETAIL")
	drift := 0
	for _, c := range changes {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Topic, c.Action, c.Detail)
		if c.Action == "drift" {
			drift++
		}
	}
	w.Flush()
	if drift > 0 {
		return fmt.Errorf("topics: %d topic(s) differ from ADR-0006's table in a way apply cannot fix", drift)
	}
	return nil
}

// listTopics prints the ADR's topics as the bus has them, with a status
// against the ADR's table.
func listTopics(ctx context.Context, env *Env, cfg Config, b bus.Bus) error {
	have, err := b.Topics(ctx)
	if err != nil {
		return err
	}
	byName := map[string]bus.TopicConfig{}
	for _, t := range have {
		byName[t.Name] = t
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITIONS\tRETENTION\tRETENTION.MS\tSTATUS")
	missing := 0
	for _, want := range wantOf(cfg, have) {
		got, ok := byName[want.Name]
		if !ok {
			missing++
			fmt.Fprintf(w, "%s\t-\t-\t-\tmissing (run: eventmart topics apply)\n", want.Name)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\n", got.Name, got.Partitions, humanDuration(got.Retention), got.Retention.Milliseconds(), status(want, got))
	}
	return w.Flush()
}

func status(want, got bus.TopicConfig) string {
	var diffs []string
	if got.Partitions != want.Partitions {
		diffs = append(diffs, fmt.Sprintf("ADR says %d partitions", want.Partitions))
	}
	if got.Retention != want.Retention {
		diffs = append(diffs, "ADR says retention "+humanDuration(want.Retention))
	}
	if len(diffs) == 0 {
		return "ok"
	}
	return "drift: " + strings.Join(diffs, ", ")
}

// humanDuration writes retention as the ADR does: days or years.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "forever"
	case d%event.Year == 0:
		return fmt.Sprintf("%dy", d/event.Year)
	case d%event.Day == 0:
		return fmt.Sprintf("%dd", d/event.Day)
	default:
		return d.String()
	}
}
