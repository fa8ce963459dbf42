package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/bus/kafka"
)

// Config is the process configuration shared by commands. Each field has a
// flag and an environment variable; the flag wins.
type Config struct {
	Bus  string // EVENTMART_BUS, --bus: "embedded" (default) or kafka://host:port[,host:port]
	Data string // EVENTMART_DATA, --data: directory of the embedded log and SQLite files; default ./data
	Addr string // EVENTMART_ADDR, --addr: HTTP listen address; default 127.0.0.1:8080
	DB   string // EVENTMART_DB, --db: "" for one SQLite file per service under Data, or postgres://… (one database per service)

	// Kafka only.
	ReplicationFactor int           // EVENTMART_REPLICATION_FACTOR, --replication-factor: of topics created; 0 for the broker's default.replication.factor
	MinInsyncReplicas int           // EVENTMART_MIN_INSYNC_REPLICAS, --min-insync-replicas: of topics created; 0 for the broker's min.insync.replicas
	InstanceID        string        // EVENTMART_INSTANCE_ID, --instance-id: static consumer-group membership; "" for dynamic
	SessionTimeout    time.Duration // EVENTMART_SESSION_TIMEOUT, --session-timeout: consumer-group session timeout; 0 for franz-go's 45s

	envErr []error // malformed environment variables, reported by parseFlags
}

// flags registers the Config flags on fs with defaults from getenv.
func (c *Config) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.Bus, "bus", envOr(getenv, "EVENTMART_BUS", "embedded"), "event bus: embedded, or kafka://host:port[,host:port] (EVENTMART_BUS)")
	fs.StringVar(&c.Data, "data", envOr(getenv, "EVENTMART_DATA", "./data"), "data directory for the embedded log and SQLite files (EVENTMART_DATA)")
	fs.StringVar(&c.Addr, "addr", envOr(getenv, "EVENTMART_ADDR", "127.0.0.1:8080"), "HTTP listen address (EVENTMART_ADDR)")
	fs.StringVar(&c.DB, "db", getenv("EVENTMART_DB"), "service databases: empty for SQLite files under --data, or postgres://user@host:port/ (EVENTMART_DB)")
	fs.Func("replication-factor", "Kafka: replication factor of the topics created (EVENTMART_REPLICATION_FACTOR; default: the broker's default.replication.factor)", intFlag(&c.ReplicationFactor, 1, 32767))
	fs.Func("min-insync-replicas", "Kafka: min.insync.replicas of the topics created (EVENTMART_MIN_INSYNC_REPLICAS; default: the broker's min.insync.replicas)", intFlag(&c.MinInsyncReplicas, 1, 32767))
	fs.StringVar(&c.InstanceID, "instance-id", getenv("EVENTMART_INSTANCE_ID"), "Kafka: consumer-group instance id of this process, unique per service instance (EVENTMART_INSTANCE_ID; empty: dynamic membership)")
	fs.Func("session-timeout", "Kafka: consumer-group session timeout (EVENTMART_SESSION_TIMEOUT; default 45s)", durationFlag(&c.SessionTimeout))
	for name, set := range map[string]func(string) error{
		"EVENTMART_REPLICATION_FACTOR":  intFlag(&c.ReplicationFactor, 1, 32767),
		"EVENTMART_MIN_INSYNC_REPLICAS": intFlag(&c.MinInsyncReplicas, 1, 32767),
		"EVENTMART_SESSION_TIMEOUT":     durationFlag(&c.SessionTimeout),
	} {
		if v := getenv(name); v != "" {
			if err := set(v); err != nil {
				c.envErr = append(c.envErr, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
}

// intFlag parses a whole number in [lo, hi] into p.
func intFlag(p *int, lo, hi int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q: want a whole number from %d to %d", s, lo, hi)
		}
		*p = n
		return nil
	}
}

// durationFlag parses a positive duration ("10s") into p.
func durationFlag(p *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration such as 10s", s)
		}
		*p = d
		return nil
	}
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// parseFlags parses args for command name; -h prints the flags. Flags may
// come before or after positional arguments (`topics apply --bus …`); the
// positional ones are returned.
func parseFlags(env *Env, name string, args []string, cfg *Config) ([]string, error) {
	fs := flag.NewFlagSet("eventmart "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg.flags(fs, env.Getenv)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(cfg.envErr) > 0 {
		return nil, usageError{errors.Join(cfg.envErr...).Error()}
	}
	return pos, nil
}

// parseInterleaved parses flags anywhere among args and returns the
// positional arguments in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// openBus opens the bus the configuration names.
// With a registry, the Kafka driver's client metrics are registered on it.
func openBus(ctx context.Context, cfg Config, metrics ...*prometheus.Registry) (bus.Bus, error) {
	switch {
	case cfg.Bus == "" || cfg.Bus == "embedded":
		eb, err := embedded.Open(filepath.Join(cfg.Data, "eventlog.db"))
		if err != nil {
			return nil, err
		}
		return eb, nil
	case strings.HasPrefix(cfg.Bus, "kafka://"):
		brokers, err := kafka.ParseURL(cfg.Bus)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		rf := int16(-1) // the broker's default
		if cfg.ReplicationFactor > 0 {
			rf = int16(cfg.ReplicationFactor)
		}
		if cfg.ReplicationFactor > 0 && cfg.MinInsyncReplicas > cfg.ReplicationFactor {
			return nil, usageError{fmt.Sprintf("min.insync.replicas %d exceeds the replication factor %d: every publish would fail", cfg.MinInsyncReplicas, cfg.ReplicationFactor)}
		}
		opts := []kafka.Option{kafka.ReplicationFactor(rf), kafka.MinInsyncReplicas(cfg.MinInsyncReplicas),
			kafka.InstanceID(cfg.InstanceID), kafka.SessionTimeout(cfg.SessionTimeout)}
		for _, reg := range metrics {
			opts = append(opts, kafka.Metrics(reg))
		}
		kb, err := kafka.Open(ctx, brokers, opts...)
		if err != nil {
			return nil, err // not a nil *kafka.Bus inside a non-nil bus.Bus
		}
		return kb, nil
	default:
		return nil, usageError{fmt.Sprintf("--bus %q: want embedded or kafka://host:port[,host:port]", cfg.Bus)}
	}
}
