package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/embedded"
	"github.com/eventmart/eventmart/bus/kafka"
)

// embeddedBus reports whether cfg names the embedded log.
func embeddedBus(cfg Config) bool { return cfg.Bus == "" || cfg.Bus == "embedded" }

// busName says which bus cfg names, for the header of commands that read it.
func busName(cfg Config) string {
	if embeddedBus(cfg) {
		return "embedded log " + filepath.Join(cfg.Data, "eventlog.db")
	}
	return cfg.Bus
}

// openExistingBus opens the bus cfg names to read it: an embedded log that
// does not exist is an error saying how to get one, not a new empty log
// (nor a new data directory).
func openExistingBus(ctx context.Context, cfg Config) (bus.Bus, error) {
	if embeddedBus(cfg) {
		path := filepath.Join(cfg.Data, "eventlog.db")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no event log at %s: start Eventmart with `eventmart run --data %s` first, or pass --data/--bus (EVENTMART_DATA/EVENTMART_BUS)", path, cfg.Data)
		}
	}
	return openBus(ctx, cfg)
}

// openBus opens the bus the configuration names.
// With a registry, the Kafka driver's client metrics are registered on it.
func openBus(ctx context.Context, cfg Config, metrics ...*prometheus.Registry) (bus.Bus, error) {
	switch {
	case embeddedBus(cfg):
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
			kafka.InstanceID(cfg.InstanceID), kafka.SessionTimeout(cfg.SessionTimeout), kafka.Compression(cfg.Compression)}
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
