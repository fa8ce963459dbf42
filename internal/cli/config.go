package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/eventmart/eventmart/internal/settings"
)

// configCmd prints every setting (internal/settings) with its current
// value and where it came from: a flag, the environment, or the default.
// It takes every flag the other commands take, to show their effect.
// Secrets are masked; nothing is opened.
//
//	eventmart config [--bus …] [--data …] …
func configCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "config")
	for _, s := range settings.All {
		if s.Flag != "" {
			env.Settings.Flag(fs, s)
		}
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("config: unexpected arguments %v", pos)}
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SETTING\tVALUE\tFROM\tUSED BY")
	for _, s := range settings.All {
		v := env.Settings.Shown(s)
		if v == "" {
			v = "-"
		}
		from := string(env.Settings.Source(s))
		if from == string(settings.FromFlag) {
			from += " --" + s.Flag
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, v, from, s.Scope)
	}
	return w.Flush()
}
