// Package cli is the eventmart command line: it parses arguments and
// environment into a Config and calls into the product's packages.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/settings"
)

// Main runs the command in args and returns the process exit code. SIGINT
// and SIGTERM cancel the command's context, so long-running commands shut
// down gracefully.
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, args, getenv, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "eventmart:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "eventmart:", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "", "run every service and the gateway in one process", runCmd},
		{"serve", "SERVICE...", "run the named services and/or the gateway (EVENTMART_SERVICE_URLS names the others)", serveCmd},
		{"topics", "[apply]", "without an argument, list the bus's topics against ADR-0006's table; apply creates or updates them to it", topicsCmd},
		{"audit", "verify", "verify the audit trail's hash chain on a running Eventmart", auditCmd},
		{"dlq", "list|show|redrive|discard SERVICE [ID|--all]", "operate a service's dead-letter queue on a running Eventmart: list SERVICE [--status S], show SERVICE ID, redrive SERVICE ID|--all, discard SERVICE ID", dlqCmd},
		{"webhooks", "list|create URL|enable|disable|delete|test|rotate|deliveries|replay ID", "manage webhook endpoints on a running Eventmart", webhooksCmd},
		{"replay", "SERVICE --topic T [--from-offset N|--from-time T]", "re-deliver a topic's records to a service's consumer group", replayCmd},
		{"schema", "list|gen|check|register", "list the event schemas (subject, event, version), generate them, check them against a registry or git revision, register them", schemaCmd},
		{"export", "--out DIR [--topics T,…] [--from T|N] [--to T|N] [--format parquet|jsonl]", "write topics to Parquet or JSON Lines files, one per topic, partition and hour, with a manifest", exportCmd},
		{"import", "DIR [--dry-run]", "publish exported files into a bus, keeping keys, order per key and event ids", importCmd},
		{"report", "daily --date YYYY-MM-DD", "orders, revenue, refunds, cancellations, top products and parcels of a day, from exported files or the log", reportCmd},
		{"region", "status|failover|failback --bus kafka://… [--from kafka://…]", "promote this region (MirrorMaker 2 replication, docs/regions.md): stop replication, translate the groups' offsets, accept writes", regionCmd},
		{"analytics", "backtest [--from T | --from-offset N] [--rules FILE]", "run the analytics rules over the log with the service's engine and print what they detect", analyticsCmd},
		{"load", "--target URL --orders N --rate R", "place orders against a running Eventmart and report throughput, latency and what an order costs: CPU ms of every process, Kafka records and PostgreSQL commits", loadCmd},
		{"config", "[flags]", "print every setting with its value and where it came from (flag, environment, default)", configCmd},
		{"services", "", "list the domain services, one a line (for scripts that start a process per service)", servicesCmd},
		{"version", "", "print the version", versionCmd},
	}
}

// Env is what a command gets besides its arguments.
type Env struct {
	Getenv   func(string) string
	Settings *settings.Values // parsed from Getenv at start; a command's flags override them
	Stdout   io.Writer
	Stderr   io.Writer
	Log      *slog.Logger
}

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// Run runs one command.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return usageError{"name a command"}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	env, err := newEnv(getenv, stdout, stderr)
	if err != nil {
		return err
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	usage(stderr)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: eventmart COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		// The usage on its own line, the description indented below it:
		// a long usage never runs into the description.
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), wrap(c.summary, 72, "      "))
	}
	fmt.Fprintln(w, "\nRun 'eventmart COMMAND -h' for a command's flags, 'eventmart config' for every setting. Every flag has an EVENTMART_* environment variable.")
}

// newEnv parses the settings in getenv; a malformed one is a usage error
// naming it and its value.
func newEnv(getenv func(string) string, stdout, stderr io.Writer) (*Env, error) {
	vals, err := settings.Parse(getenv)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	level := vals.Level(settings.LogLevel)
	return &Env{Getenv: getenv, Settings: vals, Stdout: stdout, Stderr: stderr,
		Log: slog.New(obs.LogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: obs.ReplaceAttr})))}, nil
}

func versionCmd(ctx context.Context, env *Env, args []string) error {
	fmt.Fprintln(env.Stdout, "eventmart", Version)
	return nil
}
