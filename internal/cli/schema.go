package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventmart/eventmart/event/schemagen"
	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/settings"
)

// schemaCmd manages the event schemas:
//
//	eventmart schema list
//	eventmart schema gen [--dir event/schemas]
//	eventmart schema check [--registry URL | --against git:REV] [--compatibility LEVEL]
//	eventmart schema register [--registry URL] [--compatibility LEVEL]
//
// The registry is EVENTMART_REGISTRY (Apicurio's
// http://host:port/apis/ccompat/v7, or a running Eventmart's
// http://host:port/registry); without one, the built-in registry in the
// data directory. check exits 1 on an incompatible change, printing the
// event, the field and the rule.
func schemaCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "schema")
	dir := fs.String("dir", "event/schemas", "gen: directory to write the schemas to")
	for _, s := range []*settings.Setting{settings.Registry, settings.Data, settings.AdminEmail, settings.AdminPassword} {
		env.Settings.Flag(fs, s)
	}
	against := fs.String("against", "", "check: compare with the schemas at a git revision (git:REV) instead of a registry")
	compat := fs.String("compatibility", "", "register: level of subjects that have none yet; check --against: the level to apply (default BACKWARD)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"schema: want list, gen, check or register"}
	}
	mode := registry.DefaultMode
	if *compat != "" {
		if mode, err = registry.ParseMode(*compat); err != nil {
			return usageError{err.Error()}
		}
	}
	switch pos[0] {
	case "list":
		entries, err := registry.Catalog()
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SUBJECT\tEVENT\tVERSION")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%s\t%s\n", e.Subject, e.Type, e.Version)
		}
		return w.Flush()
	case "gen":
		changed, err := schemagen.Write(*dir)
		if err != nil {
			return err
		}
		for _, n := range changed {
			fmt.Fprintln(env.Stdout, "wrote", filepath.Join(*dir, n))
		}
		fmt.Fprintf(env.Stdout, "%d schema file(s) changed in %s\n", len(changed), *dir)
		return nil
	case "check":
		entries, err := registry.Catalog()
		if err != nil {
			return err
		}
		var findings []registry.Finding
		if *against != "" {
			rev, ok := strings.CutPrefix(*against, "git:")
			if !ok || rev == "" {
				return usageError{"schema check: --against wants git:REV"}
			}
			old, err := registry.GitSchemas(ctx, ".", rev)
			if err != nil {
				return err
			}
			if findings, err = registry.CheckAgainst(entries, old, "git:"+rev, mode); err != nil {
				return err
			}
		} else {
			cl, where, err := schemaClient(ctx, env, false, true)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "checking against", where)
			if findings, err = registry.CheckRegistry(ctx, cl, entries); err != nil {
				return err
			}
		}
		return report(env, findings)
	case "register":
		cl, where, err := schemaClient(ctx, env, true, true)
		if err != nil {
			return err
		}
		entries, err := registry.Catalog()
		if err != nil {
			return err
		}
		results, err := registry.Register(ctx, cl, entries, mode)
		if err != nil {
			return err
		}
		failed := 0
		for _, r := range results {
			if r.Err != nil {
				failed++
				fmt.Fprintf(env.Stdout, "REFUSED %s: %v\n", r.Entry.Subject, r.Err)
				continue
			}
			fmt.Fprintf(env.Stdout, "%-40s version %d, id %d\n", r.Entry.Subject, r.Version, r.ID)
		}
		fmt.Fprintf(env.Stdout, "%d schema(s) registered in %s, %d refused\n", len(results)-failed, where, failed)
		if failed > 0 {
			return fmt.Errorf("schema register: %d schema(s) are incompatible with what is registered", failed)
		}
		return nil
	}
	return usageError{fmt.Sprintf("schema: unknown subcommand %q (want list, gen, check or register)", pos[0])}
}

// report prints the findings and fails if any is incompatible.
func report(env *Env, findings []registry.Finding) error {
	bad, fresh := 0, 0
	for _, f := range findings {
		if f.Against == "" {
			fresh++
		}
		if !f.OK() {
			bad++
			for _, line := range f.Report() {
				fmt.Fprintln(env.Stdout, "INCOMPATIBLE", line)
			}
		}
	}
	fmt.Fprintf(env.Stdout, "%d schema(s) checked: %d compatible, %d new, %d incompatible\n", len(findings), len(findings)-bad-fresh, fresh, bad)
	if bad > 0 {
		fmt.Fprintln(env.Stdout, "An incompatible change needs a new event version (a prior version with an upcaster in event/catalog.go), or a compatible form (e.g. an optional field: omitempty). See README, Schemas.")
		return fmt.Errorf("schema check: %d incompatible schema change(s)", bad)
	}
	return nil
}

// schemaClient returns an sr client of the registry the settings name, or
// of the built-in registry under the data directory (served in-process)
// when they name none: to read it, it must exist. For writes and
// compatibility checks (admin) through a running Eventmart (…/registry) it
// logs in as the admin.
func schemaClient(ctx context.Context, env *Env, write, admin bool) (*sr.Client, string, error) {
	url, data := env.Settings.String(settings.Registry), env.Settings.String(settings.Data)
	if url == "" {
		path := filepath.Join(data, "schema-registry.json")
		if _, err := os.Stat(path); !write && errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("no schema registry at %s: register the schemas first (`eventmart schema register --data %s`, or run Eventmart with --data %s), or pass --registry URL (EVENTMART_REGISTRY), --data, or --against git:REV", path, data, data)
		}
		st, err := registry.OpenStore(data)
		if err != nil {
			return nil, "", err
		}
		hc := &http.Client{Transport: handlerTransport{registry.Handler(st, nil)}}
		cl, err := registry.NewClient("http://built-in", "", hc)
		return cl, "the built-in registry " + st.Path(), err
	}
	token := ""
	if base, ok := strings.CutSuffix(strings.TrimRight(url, "/"), "/registry"); ok && (write || admin) {
		c := &adminClient{target: base, base: base + "/api/v1", http: &http.Client{Timeout: 30 * time.Second}}
		if err := c.login(ctx, env); err != nil {
			return nil, "", err
		}
		token = c.token
	}
	cl, err := registry.NewClient(url, token, &http.Client{Timeout: 30 * time.Second})
	return cl, url, err
}

// handlerTransport serves requests with a handler, in-process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}
