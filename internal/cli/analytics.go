package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// analyticsCmd runs the analytics service's rules over history:
//
//	eventmart analytics backtest [--from T | --from-offset N] [--rules FILE] [--until T|now] [--archive]
//
// with the service's engine, from the log (it only reads), and prints
// each detection as a JSON line, with a summary on stderr. With
// --archive, what retention deleted from the range is read from the audit
// archive of the running Eventmart at --target (export's reader); it is a
// flag, not automatic, because it needs that server and an admin login.
func analyticsCmd(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("eventmart analytics", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	for _, s := range runtimeFlags {
		env.Settings.Flag(fs, s)
	}
	from := fs.String("from", "", "read every partition from this record time (YYYY-MM-DD or RFC 3339)")
	fromOffset := fs.Int64("from-offset", 0, "or from this offset of every partition (default: the start of the log)")
	rulesFile := fs.String("rules", "", "the rule document to run (default: EVENTMART_ANALYTICS_RULES, else the standard rules with EVENTMART_ANALYTICS_ORDER_SLA)")
	clientFlags(fs, env)
	archive := fs.Bool("archive", false, "read what retention deleted from the audit archive of the running Eventmart at --target (needs --admin-email/--admin-password)")
	until := fs.String("until", "now", "declare every partition idle up to this time at the end, as the live service does with its clock (RFC 3339, now, or last: the last record's time)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "backtest" {
		return usageError{"analytics: want backtest [--from T | --from-offset N] [--rules FILE]"}
	}
	bt := analytics.Backtest{Grace: env.Settings.Duration(settings.AnalyticsGrace), FromOffset: *fromOffset,
		Warn: func(s string) { fmt.Fprintln(env.Stderr, "warning:", s) }}
	if *from != "" {
		if *fromOffset != 0 {
			return usageError{"analytics: give --from or --from-offset, not both"}
		}
		if bt.From, err = parseTime(*from); err != nil {
			return usageError{fmt.Sprintf("analytics: --from %q: want YYYY-MM-DD or an RFC 3339 time", *from)}
		}
	}
	switch *until {
	case "now":
		bt.Until = time.Now()
	case "last":
	default:
		if bt.Until, err = time.Parse(time.RFC3339, *until); err != nil {
			return usageError{fmt.Sprintf("analytics: --until %q: want now, last or an RFC 3339 time", *until)}
		}
	}
	file := *rulesFile
	if file == "" {
		file = env.Settings.String(settings.AnalyticsRules)
	}
	if file == "" {
		bt.Rules = cep.StandardRules(env.Settings.Duration(settings.AnalyticsOrderSLA))
	} else {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("analytics: %w", err)
		}
		if bt.Rules, err = analytics.ParseRules(data); err != nil {
			return fmt.Errorf("analytics: %s: %w", file, err)
		}
	}
	if *archive {
		c := newAdminClient(env, time.Minute)
		if err := c.login(ctx, env); err != nil {
			return err
		}
		bt.Archive = archiveClient{c}
	}
	cfg := config(env.Settings)
	fmt.Fprintln(env.Stderr, "bus:", busName(cfg))
	b, err := openExistingBus(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	res, err := bt.Run(ctx, b)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	byRule := map[string]int{}
	for _, d := range res.Detections {
		if err := enc.Encode(d); err != nil {
			return err
		}
		byRule[d.Rule]++
	}
	fmt.Fprintf(env.Stderr, "backtest: %d records read (%d from the audit archive), %d late, %d detections", res.Records, res.FromArchive, res.Late, len(res.Detections))
	for _, r := range bt.Rules {
		fmt.Fprintf(env.Stderr, "; %s %s", r.Name, strconv.Itoa(byRule[r.Name]))
	}
	fmt.Fprintln(env.Stderr)
	return nil
}
