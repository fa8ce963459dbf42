package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/eventmart/eventmart/internal/loadgen"
	"github.com/eventmart/eventmart/internal/settings"
)

// loadCmd drives a running Eventmart with orders and reports throughput,
// latency and, from the first order to quiet after the last, the CPU per
// order of every process serving them, the Kafka records and PostgreSQL
// commits per order (see measuredProcesses, measuredKafka,
// measuredPostgres).
func loadCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "load")
	cfg := loadgen.Config{Progress: env.Stderr, ProgressTTY: isTerminal(env.Stderr)}
	clientFlags(fs, env)
	fs.IntVar(&cfg.Orders, "orders", 1000, "orders to place")
	fs.Float64Var(&cfg.Rate, "rate", 100, "orders per second to start (0: as fast as --concurrency allows)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "orders in flight at most")
	fs.Float64Var(&cfg.DeclineRatio, "decline-ratio", 0, "share of orders paid with the declined test card (0-1)")
	fs.IntVar(&cfg.Customers, "customers", 0, "customers to register (default: min(concurrency, 50))")
	fs.IntVar(&cfg.Products, "products", 20, "products to seed")
	acceptedOut := fs.String("accepted-out", "", "write the id of every order accepted with 202 to this file, one per line")
	metrics := fs.String("metrics", "auto", "comma-separated [NAME=]URL of the Eventmart processes whose CPU per order to report, read from their /metrics; auto: the target and every instance in EVENTMART_SERVICE_URLS; none: no process")
	cpuPIDs := fs.String("cpu-pids", "", "comma-separated [NAME=]PID of other processes whose CPU (with their descendants') to report per order: the broker, PostgreSQL (Linux)")
	kafka := fs.String("kafka", "auto", "comma-separated brokers of the run's own Kafka cluster, whose records written per order to report (end offsets of every topic); auto: from EVENTMART_BUS when it is kafka://; none: not counted")
	postgres := fs.String("postgres", "auto", "the services' PostgreSQL (an EVENTMART_DB URL), whose commits per order to report (pg_stat_database of their databases); auto: EVENTMART_DB; none: not counted")
	asJSON := fs.Bool("json", false, "print the result as JSON (for scripts)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("load: unexpected arguments %v", pos)}
	}
	cfg.Target = env.Settings.String(settings.Target)
	cfg.AdminEmail, cfg.AdminPassword = env.Settings.String(settings.AdminEmail), env.Settings.String(settings.AdminPassword)
	fmt.Fprintln(env.Stderr, "target:", cfg.Target)
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" {
		// The admin seeds the products and their stock: say so before sending anything.
		return usageError{"load: set --admin-email and --admin-password (or EVENTMART_ADMIN_EMAIL and EVENTMART_ADMIN_PASSWORD): the admin account seeds the products and their stock"}
	}
	if cfg.DeclineRatio < 0 || cfg.DeclineRatio > 1 {
		return usageError{"--decline-ratio must be between 0 and 1"}
	}
	var err error
	if cfg.Processes, err = measuredProcesses(env, cfg.Target, *metrics, *cpuPIDs); err != nil {
		return err
	}
	if cfg.Kafka, cfg.KafkaDiscovered, err = measuredKafka(env, *kafka); err != nil {
		return err
	}
	if cfg.Postgres, cfg.PostgresDiscovered, err = measuredPostgres(env, *postgres); err != nil {
		return err
	}
	if *acceptedOut != "" {
		f, err := os.Create(*acceptedOut)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		defer f.Close()
		var mu sync.Mutex
		cfg.OnAccepted = func(id string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(f, id) // unbuffered: a reader sees each id at once
		}
	}
	res, err := loadgen.Run(ctx, cfg)
	err = unreachable(cfg.Target, err)
	if res != nil && *asJSON {
		b, jerr := json.MarshalIndent(res, "", "  ")
		if jerr != nil {
			return fmt.Errorf("load: %w", jerr)
		}
		fmt.Fprintln(env.Stdout, string(b))
	} else if res != nil {
		fmt.Fprintln(env.Stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Failed > 0 || res.Unexpected > 0 {
		return fmt.Errorf("load: %d failed, %d unexpected outcomes", res.Failed, res.Unexpected)
	}
	return nil
}

// listItems splits a comma-separated flag value.
func listItems(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// measuredProcesses returns the processes whose CPU load measures: the
// Eventmart processes of --metrics (auto: the target, named "eventmart",
// or "gateway" when EVENTMART_SERVICE_URLS names services elsewhere, and
// every instance there, named after its service, "order-2" for the second
// of several), then the --cpu-pids (named after their command unless
// NAME= is given).
func measuredProcesses(env *Env, target, metrics, pids string) ([]loadgen.Process, error) {
	var out []loadgen.Process
	for _, item := range listItems(metrics) {
		switch item {
		case "none":
			continue
		case "auto":
			remote, err := parseServiceURLs(env.Settings.String(settings.ServiceURLs))
			if err != nil {
				return nil, usageError{fmt.Sprintf("--metrics auto: %v", err)}
			}
			name := "eventmart"
			if len(remote) > 0 {
				name = "gateway"
			}
			out = append(out, loadgen.Process{Name: name, MetricsURL: loadgen.MetricsURL(target), Discovered: true})
			for _, svc := range serviceNames() {
				for i, u := range remote[svc] {
					n := svc
					if len(remote[svc]) > 1 {
						n = fmt.Sprintf("%s-%d", svc, i+1)
					}
					out = append(out, loadgen.Process{Name: n, MetricsURL: loadgen.MetricsURL(u.String()), Discovered: true})
				}
			}
			continue
		}
		name, raw, ok := strings.Cut(item, "=")
		if !ok {
			raw = item
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageError{fmt.Sprintf("--metrics: %q is not [NAME=]http(s)://host:port", item)}
		}
		if !ok {
			name = u.Host
		}
		out = append(out, loadgen.Process{Name: name, MetricsURL: loadgen.MetricsURL(raw)})
	}
	for _, item := range listItems(pids) {
		name, raw, named := strings.Cut(item, "=")
		if !named {
			raw = item
		}
		pid, err := strconv.Atoi(raw)
		if err != nil || pid <= 0 {
			return nil, usageError{fmt.Sprintf("--cpu-pids: %q is not a process id", item)}
		}
		if !named {
			name = loadgen.ProcessName(pid)
		}
		out = append(out, loadgen.Process{Name: name, PID: pid})
	}
	return out, nil
}

// measuredKafka returns the brokers whose records load counts: --kafka, or
// with auto those of EVENTMART_BUS when it is kafka:// (discovered).
func measuredKafka(env *Env, flag string) ([]string, bool, error) {
	switch flag {
	case "none", "":
		return nil, false, nil
	case "auto":
		bus, ok := strings.CutPrefix(env.Settings.String(settings.Bus), "kafka://")
		if !ok {
			return nil, false, nil
		}
		return listItems(bus), true, nil
	}
	return listItems(strings.TrimPrefix(flag, "kafka://")), false, nil
}

// measuredPostgres returns the database URL whose commits load counts:
// --postgres, or with auto EVENTMART_DB when it is postgres:// (discovered).
func measuredPostgres(env *Env, flag string) (string, bool, error) {
	switch flag {
	case "none", "":
		return "", false, nil
	case "auto":
		db := env.Settings.String(settings.DB)
		if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
			return "", false, nil
		}
		return db, true, nil
	}
	if !strings.HasPrefix(flag, "postgres://") && !strings.HasPrefix(flag, "postgresql://") {
		return "", false, usageError{fmt.Sprintf("--postgres: %q is not a postgres:// URL", flag)}
	}
	return flag, false, nil
}
