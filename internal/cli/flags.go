package cli

import (
	"flag"
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

	// Kafka only.
	ReplicationFactor int           // settings.ReplicationFactor: of topics created; 0 for the broker's default.replication.factor
	MinInsyncReplicas int           // settings.MinInsyncReplicas: of topics created; 0 for the broker's min.insync.replicas
	InstanceID        string        // settings.InstanceID: static consumer-group membership; "" for dynamic
	SessionTimeout    time.Duration // settings.SessionTimeout: consumer-group session timeout (default 10s; 0: franz-go's 45s)
}

// runtimeFlags are the settings Config holds, each with its flag.
var runtimeFlags = []*settings.Setting{
	settings.Bus, settings.Data, settings.Addr, settings.DB,
	settings.ReplicationFactor, settings.MinInsyncReplicas, settings.InstanceID, settings.SessionTimeout,
}

// config returns the Config the settings v hold.
func config(v *settings.Values) Config {
	return Config{
		Bus: v.String(settings.Bus), Data: v.String(settings.Data), Addr: v.String(settings.Addr), DB: v.String(settings.DB),
		ReplicationFactor: v.Int(settings.ReplicationFactor), MinInsyncReplicas: v.Int(settings.MinInsyncReplicas),
		InstanceID: v.String(settings.InstanceID), SessionTimeout: v.Duration(settings.SessionTimeout),
	}
}

// parseFlags parses args for command name; -h prints the flags. Flags may
// come before or after positional arguments (`topics apply --bus …`); the
// positional ones are returned.
func parseFlags(env *Env, name string, args []string, cfg *Config) ([]string, error) {
	fs := flag.NewFlagSet("eventmart "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	for _, s := range runtimeFlags {
		env.Settings.Flag(fs, s)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	*cfg = config(env.Settings)
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
