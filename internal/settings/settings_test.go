package settings_test

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/settings"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Every declaration is complete, its name and flag unique, and its default
// parses as its kind.
func TestDeclarations(t *testing.T) {
	names, flags := map[string]bool{}, map[string]bool{}
	for _, s := range settings.All {
		if s.Name == "" || s.Kind == "" || s.Meaning == "" || s.Scope == "" {
			t.Errorf("%+v: incomplete declaration", s)
		}
		if names[s.Name] {
			t.Errorf("%s declared twice", s.Name)
		}
		names[s.Name] = true
		if s.Flag != "" && flags[s.Flag] {
			t.Errorf("flag --%s declared twice", s.Flag)
		}
		flags[s.Flag] = true
	}
	if _, err := settings.Parse(env(nil)); err != nil {
		t.Errorf("the defaults do not parse: %v", err)
	}
}

func TestParse(t *testing.T) {
	v, err := settings.Parse(env(map[string]string{
		"EVENTMART_SAGA_TIMEOUT": "5s", "EVENTMART_RETRY_DELAYS": " 1s, 2m ", "EVENTMART_RETRY_ATTEMPTS": "3",
		"EVENTMART_NOTIFY_FAIL_TEMPLATES": "a,,b", "EVENTMART_CARRIER_DISPATCH_AFTER": "0s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Duration(settings.SagaTimeout); got != 5*time.Second || v.Source(settings.SagaTimeout) != settings.FromEnv {
		t.Errorf("saga timeout %v from %s", got, v.Source(settings.SagaTimeout))
	}
	if got := v.Duration(settings.SagaSweepInterval); got != time.Second || v.Source(settings.SagaSweepInterval) != settings.FromDefault {
		t.Errorf("sweep interval %v from %s", got, v.Source(settings.SagaSweepInterval))
	}
	if got := v.Durations(settings.RetryDelays); len(got) != 2 || got[1] != 2*time.Minute {
		t.Errorf("retry delays %v", got)
	}
	if v.Int(settings.RetryAttempts) != 3 || strings.Join(v.List(settings.NotifyFailTemplates), "|") != "a|b" {
		t.Errorf("attempts %d, templates %q", v.Int(settings.RetryAttempts), v.List(settings.NotifyFailTemplates))
	}
	if !v.IsSet(settings.CarrierDispatchAfter) || v.Duration(settings.CarrierDispatchAfter) != 0 || v.IsSet(settings.CarrierDeliverAfter) {
		t.Error("a carrier dispatching at once is not told from no carrier")
	}
	var none *settings.Values // every default
	if none.Duration(settings.SagaTimeout) != 30*time.Second || none.String(settings.Bus) != "embedded" {
		t.Error("nil Values do not hold the defaults")
	}
}

// A malformed value is an error naming the setting and the value, all of
// them at once; a secret's value is never repeated.
func TestParseErrors(t *testing.T) {
	_, err := settings.Parse(env(map[string]string{
		"EVENTMART_SAGA_TIMEOUT": "soon", "EVENTMART_REPLICATION_FACTOR": "0", "EVENTMART_CARRIER_TICK": "0s",
		"EVENTMART_RETRY_DELAYS": "1s,x", "EVENTMART_LOG_LEVEL": "loud", "EVENTMART_TARGET": "localhost",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`EVENTMART_SAGA_TIMEOUT="soon"`, `EVENTMART_REPLICATION_FACTOR="0"`, `EVENTMART_CARRIER_TICK="0s"`,
		`EVENTMART_RETRY_DELAYS="1s,x"`, `EVENTMART_LOG_LEVEL="loud"`, `EVENTMART_TARGET="localhost"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
}

func TestFlagOverridesEnvironment(t *testing.T) {
	v, err := settings.Parse(env(map[string]string{"EVENTMART_BUS": "kafka://a:1"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v.Flag(fs, settings.Bus)
	v.Flag(fs, settings.ReplicationFactor)
	if err := fs.Parse([]string{"--bus", "embedded"}); err != nil {
		t.Fatal(err)
	}
	if v.String(settings.Bus) != "embedded" || v.Source(settings.Bus) != settings.FromFlag {
		t.Errorf("bus %q from %s", v.String(settings.Bus), v.Source(settings.Bus))
	}
	if err := fs.Parse([]string{"--replication-factor", "many"}); err == nil || !strings.Contains(err.Error(), "replication-factor") {
		t.Errorf("bad flag value: %v", err)
	}
}

func TestShownMasksSecrets(t *testing.T) {
	v, err := settings.Parse(env(map[string]string{
		"EVENTMART_JWT_SECRET": "s3cr3t-s3cr3t", "EVENTMART_DB": "postgres://u:hunter2@h:5432/shop",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Shown(settings.JWTSecret); got != "****" {
		t.Errorf("secret shown as %q", got)
	}
	if got := v.Shown(settings.DB); strings.Contains(got, "hunter2") || !strings.Contains(got, "u:xxxxx@h:5432") {
		t.Errorf("database URL shown as %q", got)
	}
	if got := v.Shown(settings.SMTPPassword); got != "" {
		t.Errorf("an unset secret shown as %q", got)
	}
}

// README's Configuration table has one row per declared setting, with its
// flag, default and scope, and no row for a setting that is not declared.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if name, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ = strings.Cut(name, "`")
			rows[name] = line
		}
	}
	declared := map[string]bool{}
	for _, s := range settings.All {
		declared[s.Name] = true
		flagCell, defCell := "", ""
		if s.Flag != "" {
			flagCell = "`--" + s.Flag + "`"
		}
		if s.Default != "" {
			defCell = "`" + s.Default + "`"
		}
		want := strings.Join([]string{"| `" + s.Name + "`", flagCell, defCell, s.Scope, ""}, " | ")
		want = strings.ReplaceAll(want, "  ", " ")
		if row, ok := rows[s.Name]; !ok {
			t.Errorf("README's Configuration table lacks %s; want a row starting %q", s.Name, want)
		} else if !strings.HasPrefix(row, want) {
			t.Errorf("README's row of %s:\n%s\nwant it to start %q", s.Name, row, want)
		}
	}
	for name := range rows {
		if !declared[name] {
			t.Errorf("README's Configuration table has a row for %s, which is not declared in internal/settings", name)
		}
	}
}
