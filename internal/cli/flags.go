package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/settings"
)

// Config is the process configuration shared by the commands that open
// the bus. Each field is a setting (internal/settings) with a flag; the
// flag wins.
type Config struct {
	Bus  string // settings.Bus: "embedded" (default) or kafka://host:port[,host:port]
	Data string // settings.Data: directory of the embedded log and SQLite files
	Addr string // settings.Addr: HTTP listen address
	DB   string // settings.DB: "" for one SQLite file per service under Data, or postgres://… (one database per service)

	// Embedded log only.
	LogPartitions int // settings.LogPartitions: partitions of each topic it creates, at most the ADR's

	// Kafka only.
	ReplicationFactor int           // settings.ReplicationFactor: of topics created; 0 for the broker's default.replication.factor
	MinInsyncReplicas int           // settings.MinInsyncReplicas: of topics created; 0 for the broker's min.insync.replicas
	InstanceID        string        // settings.InstanceID: static consumer-group membership; "" for dynamic
	SessionTimeout    time.Duration // settings.SessionTimeout: consumer-group session timeout (default 10s; 0: franz-go's 45s)
	Compression       string        // settings.KafkaCompression: codec of the batches published (default snappy)
}

// runtimeFlags are the settings Config holds, each with its flag.
var runtimeFlags = []*settings.Setting{
	settings.Bus, settings.Data, settings.Addr, settings.DB, settings.LogPartitions,
	settings.ReplicationFactor, settings.MinInsyncReplicas, settings.InstanceID, settings.SessionTimeout, settings.KafkaCompression,
}

// config returns the Config the settings v hold.
func config(v *settings.Values) Config {
	return Config{
		Bus: v.String(settings.Bus), Data: v.String(settings.Data), Addr: v.String(settings.Addr), DB: v.String(settings.DB),
		LogPartitions:     v.Int(settings.LogPartitions),
		ReplicationFactor: v.Int(settings.ReplicationFactor), MinInsyncReplicas: v.Int(settings.MinInsyncReplicas),
		InstanceID: v.String(settings.InstanceID), SessionTimeout: v.Duration(settings.SessionTimeout),
		Compression: v.String(settings.KafkaCompression),
	}
}

// busFlags are the settings of commands that only open the bus (topics).
var busFlags = []*settings.Setting{settings.Bus, settings.Data, settings.LogPartitions, settings.ReplicationFactor, settings.MinInsyncReplicas}

// parseFlags parses args for command name with the flags of the settings
// flags (runtimeFlags, busFlags); -h prints the command's usage. Flags may
// come before or after positional arguments (`topics apply --bus …`); the
// positional ones are returned.
func parseFlags(env *Env, name string, args []string, cfg *Config, flags []*settings.Setting) ([]string, error) {
	fs := newFlagSet(env, name)
	for _, s := range flags {
		env.Settings.Flag(fs, s)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	*cfg = config(env.Settings)
	return pos, nil
}

// newFlagSet returns the flag set of command name: its -h prints the
// command's usage line and summary (from commands), then its flags.
func newFlagSet(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("eventmart "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		for _, c := range commands() {
			if c.name == name {
				fmt.Fprintf(w, "Usage: eventmart %s %s\n\n%s\n", c.name, c.args, wrap(c.summary, 76, ""))
			}
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// wrap breaks s into lines of at most width characters, each after the
// first prefixed with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n" + indent)
			n = len(indent)
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
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
