package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

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
}

// flags registers the Config flags on fs with defaults from getenv.
func (c *Config) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.Bus, "bus", envOr(getenv, "EVENTMART_BUS", "embedded"), "event bus: embedded, or kafka://host:port[,host:port] (EVENTMART_BUS)")
	fs.StringVar(&c.Data, "data", envOr(getenv, "EVENTMART_DATA", "./data"), "data directory for the embedded log and SQLite files (EVENTMART_DATA)")
	fs.StringVar(&c.Addr, "addr", envOr(getenv, "EVENTMART_ADDR", "127.0.0.1:8080"), "HTTP listen address (EVENTMART_ADDR)")
	fs.StringVar(&c.DB, "db", getenv("EVENTMART_DB"), "service databases: empty for SQLite files under --data, or postgres://user@host:port/ (EVENTMART_DB)")
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
	return parseInterleaved(fs, args)
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
		var opts []kafka.Option
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
