package loadgen

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaCounter counts the records written to a Kafka cluster: the end
// offsets of every topic but Kafka's internal ones, summed. Every topic
// counts, so the cluster should be the run's own.
type kafkaCounter struct{ adm *kadm.Client }

func newKafkaCounter(brokers []string) (*kafkaCounter, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("loadgen: kafka: %w", err)
	}
	return &kafkaCounter{adm: kadm.NewClient(cl)}, nil
}

func (k *kafkaCounter) close() { k.adm.Close() }

func (k *kafkaCounter) records(ctx context.Context) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := k.adm.ListTopics(ctx) // internal topics (__consumer_offsets) left out
	if err != nil {
		return nil, fmt.Errorf("loadgen: kafka: list topics: %w", err)
	}
	t := tally{}
	if len(topics) == 0 {
		return t, nil
	}
	ends, err := k.adm.ListEndOffsets(ctx, topics.Names()...)
	if err != nil {
		return nil, fmt.Errorf("loadgen: kafka: end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("loadgen: kafka: end offsets: %w", err)
	}
	ends.Each(func(o kadm.ListedOffset) { t[o.Topic] += o.Offset })
	return t, nil
}

// tally is a count per name: records per topic, commits per database.
type tally map[string]int64

func (t tally) sum() int64 {
	var n int64
	for _, v := range t {
		n += v
	}
	return n
}

// since returns the counts of t since earlier, leaving out names that
// did not move.
func (t tally) since(earlier tally) tally {
	out := tally{}
	for k, v := range t {
		if d := v - earlier[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// pgCounter counts the transactions PostgreSQL committed in Eventmart's
// databases: pg_stat_database.xact_commit summed over <prefix>_*, the
// databases sqldb.Open names for a postgres:// URL (the URL's database
// name, or "eventmart").
type pgCounter struct {
	dsn    string // the maintenance database
	prefix string
}

// newPGCounter reads dsn as EVENTMART_DB is read and checks it can connect.
func newPGCounter(ctx context.Context, dsn string) (*pgCounter, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("loadgen: postgres: %q is not a postgres:// URL", dsn)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" || prefix == "postgres" {
		prefix = "eventmart"
	}
	u.Path = "/postgres"
	c := &pgCounter{dsn: u.String(), prefix: prefix}
	if _, err := c.commits(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// commits returns the commits per service: its database's name without
// the prefix.
func (c *pgCounter) commits(ctx context.Context) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return nil, fmt.Errorf("loadgen: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	// The prefix is matched literally: _ and % escaped for LIKE.
	like := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(c.prefix) + `\_%`
	rows, err := conn.Query(ctx, `SELECT datname, xact_commit FROM pg_stat_database WHERE datname LIKE $1`, like)
	if err != nil {
		return nil, fmt.Errorf("loadgen: postgres: pg_stat_database: %w", err)
	}
	t := tally{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		t[strings.TrimPrefix(name, c.prefix+"_")] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loadgen: postgres: pg_stat_database: %w", err)
	}
	return t, nil
}

// pgStatsFlush is how long a PostgreSQL backend may hold the counts of
// its last transactions before reporting them to pg_stat_database
// (PGSTAT_IDLE_INTERVAL, 10 s since PostgreSQL 15), plus a margin.
const pgStatsFlush = 11 * time.Second

// settledCommits reads the commits until three reads a second apart agree
// (the backends, idle since, have reported theirs), at most pgStatsFlush.
func (c *pgCounter) settledCommits(ctx context.Context) (tally, error) {
	prev, err := c.commits(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(pgStatsFlush)
	for same := 0; same < 2 && time.Now().Before(deadline); {
		select {
		case <-time.After(time.Second): // the backends report at most once a second
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cur, err := c.commits(ctx)
		if err != nil {
			return nil, err
		}
		if cur.sum() == prev.sum() {
			same++
		} else {
			same = 0
		}
		prev = cur
	}
	return prev, nil
}
