package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/eventmart/eventmart/internal/loadgen"
	"github.com/eventmart/eventmart/internal/settings"
)

// loadCmd drives a running Eventmart with orders and reports throughput and
// latency.
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
	cpuPIDs := fs.String("cpu-pids", "", "comma-separated pids whose CPU (with their descendants') to report per order: every process serving the orders (Linux)")
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
	for _, f := range strings.FieldsFunc(*cpuPIDs, func(r rune) bool { return r == ',' || r == ' ' }) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return usageError{fmt.Sprintf("--cpu-pids: %q is not a process id", f)}
		}
		cfg.CPUPIDs = append(cfg.CPUPIDs, pid)
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
	if res != nil {
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
