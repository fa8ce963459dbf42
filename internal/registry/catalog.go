package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventmart/eventmart/event"
)

// Entry is one schema of the catalog: an event type at one version.
type Entry struct {
	Type    event.Type
	Version string
	Subject string
	Schema  []byte
}

// Subject is the registry subject of t's schema at version v:
// "eventmart.OrderCreated.v2" (a record-name strategy: every event version
// is its own subject; within it, compatible changes only).
func Subject(t event.Type, v string) string { return "eventmart." + string(t) + "." + v }

// Catalog returns the repository's schemas (event/schemas, embedded).
func Catalog() ([]Entry, error) {
	var out []Entry
	for _, s := range event.Catalog() {
		for _, v := range s.Versions() {
			b, ok := event.Schema(s.Type, v)
			if !ok {
				return nil, fmt.Errorf("registry: no schema for %s %s", s.Type, v)
			}
			out = append(out, Entry{Type: s.Type, Version: v, Subject: Subject(s.Type, v), Schema: b})
		}
	}
	return out, nil
}

// Finding is the outcome of checking one entry.
type Finding struct {
	Entry      Entry
	Mode       Mode
	Against    string // what it was compared with: "registry (versions 1-3)", "git:HEAD", or "" when new
	Violations []Violation
	Note       string // e.g. the registry's own messages when it disagrees
}

// OK reports whether the entry may be registered.
func (f Finding) OK() bool { return len(f.Violations) == 0 && f.Note == "" }

// Report is the finding as lines for people: one per violation, naming the
// event, the field and the rule.
func (f Finding) Report() []string {
	var out []string
	head := fmt.Sprintf("%s %s (subject %s, %s, against %s)", f.Entry.Type, f.Entry.Version, f.Entry.Subject, f.Mode, f.Against)
	for _, v := range f.Violations {
		out = append(out, head+": "+v.String())
	}
	if f.Note != "" {
		out = append(out, head+": "+f.Note)
	}
	return out
}

// NewClient returns an sr client of the registry at url (Apicurio's
// http://host:port/apis/ccompat/v7, or Eventmart's /registry), sending
// token as a bearer token when set.
func NewClient(url, token string, hc *http.Client) (*sr.Client, error) {
	opts := []sr.ClientOpt{sr.URLs(strings.TrimRight(url, "/")), sr.UserAgent("eventmart")}
	if hc != nil {
		opts = append(opts, sr.HTTPClient(hc))
	}
	if token != "" {
		opts = append(opts, sr.BearerToken(token))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return cl, nil
}

func isNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusNotFound)
}

// level returns subject's compatibility level, the global one if it has
// none of its own.
func level(ctx context.Context, cl *sr.Client, subject string) (Mode, error) {
	res := cl.Compatibility(sr.WithParams(ctx, sr.DefaultToGlobal), subject)
	if err := res[0].Err; err != nil {
		if !isNotFound(err) {
			return "", fmt.Errorf("registry: compatibility level of %s: %w", subject, err)
		}
		g := cl.Compatibility(ctx)
		if g[0].Err != nil {
			return "", fmt.Errorf("registry: global compatibility level: %w", g[0].Err)
		}
		return ParseMode(g[0].Level.String())
	}
	return ParseMode(res[0].Level.String())
}

// registered returns subject's schemas, oldest first (none if the subject
// does not exist).
func registered(ctx context.Context, cl *sr.Client, subject string) ([][]byte, error) {
	ss, err := cl.Schemas(ctx, subject)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: versions of %s: %w", subject, err)
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s.Schema.Schema)
	}
	return out, nil
}

// CheckRegistry compares each entry with what the registry holds under its
// subject, at the subject's level: the violations are computed here (with
// the field and the rule) and the registry's own check endpoint is asked
// too; if it disagrees, the finding says so.
func CheckRegistry(ctx context.Context, cl *sr.Client, entries []Entry) ([]Finding, error) {
	var out []Finding
	for _, e := range entries {
		mode, err := level(ctx, cl, e.Subject)
		if err != nil {
			return nil, err
		}
		versions, err := registered(ctx, cl, e.Subject)
		if err != nil {
			return nil, err
		}
		f := Finding{Entry: e, Mode: mode}
		if len(versions) == 0 {
			out = append(out, f)
			continue
		}
		f.Against = fmt.Sprintf("the registry's version %d", len(versions))
		if mode.transitive() && len(versions) > 1 {
			f.Against = fmt.Sprintf("the registry's versions 1-%d", len(versions))
		}
		if f.Violations, err = Check(mode, versions, e.Schema); err != nil {
			return nil, err
		}
		version := -1
		if mode.transitive() {
			version = -2
		}
		res, err := cl.CheckCompatibility(sr.WithParams(ctx, sr.Verbose), e.Subject, version, sr.Schema{Schema: string(e.Schema), Type: sr.TypeJSON})
		if err != nil {
			return nil, fmt.Errorf("registry: check %s: %w", e.Subject, err)
		}
		if res.Is != (len(f.Violations) == 0) {
			f.Note = fmt.Sprintf("the registry says is_compatible=%v (%s), this checker found %d violation(s)", res.Is, strings.Join(res.Messages, "; "), len(f.Violations))
		}
		out = append(out, f)
	}
	return out, nil
}

// Result is the outcome of registering one entry.
type Result struct {
	Entry   Entry
	ID      int
	Version int
	Err     error // an incompatible schema is a *IncompatibleError with the violations
}

// Register registers every entry under its subject. A subject without its
// own compatibility level first gets mode (BACKWARD when ""), so a registry
// whose global default is NONE (Apicurio's) still enforces compatibility.
// Entries the registry refuses are returned with their error; other
// failures stop it.
func Register(ctx context.Context, cl *sr.Client, entries []Entry, mode Mode) ([]Result, error) {
	if mode == "" {
		mode = DefaultMode
	}
	var l sr.CompatibilityLevel
	if err := l.UnmarshalText([]byte(mode)); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var out []Result
	for _, e := range entries {
		own := cl.Compatibility(ctx, e.Subject)
		if err := own[0].Err; err != nil {
			if !isNotFound(err) {
				return nil, fmt.Errorf("registry: compatibility level of %s: %w", e.Subject, err)
			}
			if res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: l}, e.Subject); res[0].Err != nil {
				return nil, fmt.Errorf("registry: set the level of %s: %w", e.Subject, res[0].Err)
			}
		}
		r := Result{Entry: e}
		id, err := cl.RegisterSchema(ctx, e.Subject, sr.Schema{Schema: string(e.Schema), Type: sr.TypeJSON}, -1, -1)
		var re *sr.ResponseError
		switch {
		case err == nil:
			r.ID = id
			ss, lerr := cl.LookupSchema(ctx, e.Subject, sr.Schema{Schema: string(e.Schema), Type: sr.TypeJSON})
			if lerr != nil {
				return nil, fmt.Errorf("registry: look up %s: %w", e.Subject, lerr)
			}
			r.Version = ss.Version
		case errors.As(err, &re) && re.StatusCode == http.StatusConflict:
			m, lerr := level(ctx, cl, e.Subject)
			if lerr != nil {
				return nil, lerr
			}
			versions, verr := registered(ctx, cl, e.Subject)
			if verr != nil {
				return nil, verr
			}
			viol, _ := Check(m, versions, e.Schema)
			r.Err = &IncompatibleError{Subject: e.Subject, Violations: viol, Registry: re.Message}
		default:
			return nil, fmt.Errorf("registry: register %s: %w", e.Subject, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// GitSchemas returns the schema files of event/schemas at git revision rev
// of the repository in dir, by file name (none if rev has no such
// directory yet).
func GitSchemas(ctx context.Context, dir, rev string) (map[string][]byte, error) {
	verify := exec.CommandContext(ctx, "git", "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	verify.Dir = dir
	if err := verify.Run(); err != nil {
		return nil, fmt.Errorf("registry: %q is not a commit of the git repository in %s: %w", rev, dir, err)
	}
	ls := exec.CommandContext(ctx, "git", "ls-tree", "--full-tree", "--name-only", rev, "event/schemas/")
	ls.Dir = dir
	names, err := ls.Output()
	if err != nil {
		return nil, fmt.Errorf("registry: git ls-tree %s event/schemas/: %w %s", rev, err, exitStderr(err))
	}
	out := map[string][]byte{}
	for _, n := range strings.Fields(string(names)) {
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		show := exec.CommandContext(ctx, "git", "show", rev+":"+n)
		show.Dir = dir
		b, err := show.Output()
		if err != nil {
			return nil, fmt.Errorf("registry: git show %s:%s: %w %s", rev, n, err, exitStderr(err))
		}
		out[strings.TrimPrefix(n, "event/schemas/")] = b
	}
	return out, nil
}

func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// CheckAgainst compares each entry with the schema of the same file in
// old (for example GitSchemas at a revision) under mode. A schema in old
// that the catalog no longer has is a finding too: consumers would reject
// that version's records.
func CheckAgainst(entries []Entry, old map[string][]byte, what string, mode Mode) ([]Finding, error) {
	var out []Finding
	seen := map[string]bool{}
	for _, e := range entries {
		name := event.SchemaFile(e.Type, e.Version)
		seen[name] = true
		f := Finding{Entry: e, Mode: mode}
		if prev, ok := old[name]; ok {
			f.Against = what
			viol, err := Check(mode, [][]byte{prev}, e.Schema)
			if err != nil {
				return nil, fmt.Errorf("registry: %s: %w", name, err)
			}
			f.Violations = viol
		}
		out = append(out, f)
	}
	for name := range old {
		if seen[name] {
			continue
		}
		typ, v, _ := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
		out = append(out, Finding{Entry: Entry{Type: event.Type(typ), Version: v, Subject: Subject(event.Type(typ), v)}, Mode: mode, Against: what,
			Note: "this event version's schema was removed: consumers would reject its records (keep it as a prior version with an upcaster)"})
	}
	return out, nil
}
