// Package settings declares every setting of Eventmart — the runtime's,
// each service's and the command line client's — once (declared.go), and
// parses them once, at start, into typed Values.
//
// A setting is an environment variable; some have a command line flag,
// which wins. Parse reports a malformed value naming the setting and the
// value, so a process refuses to start on a typo instead of running with a
// default nobody asked for.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a setting's value.
type Kind string

const (
	String    Kind = "string"
	Int       Kind = "int"      // a whole number, within Min and Max
	Duration  Kind = "duration" // a Go duration ("30s"), positive unless ZeroOK
	Durations Kind = "durations"
	List      Kind = "list"  // comma-separated, blanks dropped
	URL       Kind = "url"   // an absolute URL
	Level     Kind = "level" // a log level: debug, info, warn or error
)

// Setting is the declaration of one setting.
type Setting struct {
	Name    string // the environment variable, e.g. EVENTMART_SAGA_TIMEOUT
	Flag    string // the command line flag that overrides it, without "--"; "" for none
	Kind    Kind
	Default string // as it would be written in the environment; "" for none (Meaning says what unset means)
	Meaning string // one line, for --help, `eventmart config` and the README
	Secret  bool   // never printed
	Scope   string // who reads it: "runtime", "cli", or the service ("order", …)

	Min, Max int  // Int: the accepted range (0, 0: any)
	ZeroOK   bool // Duration: 0 is accepted
}

// Source is where a setting's current value came from.
type Source string

const (
	FromDefault Source = "default"
	FromEnv     Source = "environment"
	FromFlag    Source = "flag"
)

type value struct {
	raw string
	src Source
	v   any // the parsed value, of the Go type of the setting's kind
}

// Values are parsed settings. A nil *Values holds every default.
// Flags set values while the command line is parsed; after that Values are
// only read, so they may be shared.
type Values struct {
	m map[*Setting]value
}

// Parse reads every declared setting from getenv and parses it. The error
// names each malformed setting and its value.
func Parse(getenv func(string) string) (*Values, error) {
	v := &Values{m: make(map[*Setting]value, len(All))}
	var errs []error
	for _, s := range All {
		raw, src := getenv(s.Name), FromEnv
		if raw == "" {
			raw, src = s.Default, FromDefault
		}
		if err := v.set(s, raw, src); err != nil {
			errs = append(errs, err)
		}
	}
	return v, errors.Join(errs...)
}

// set parses raw as s's value from src.
func (v *Values) set(s *Setting, raw string, src Source) error {
	parsed, err := s.parse(raw)
	if err != nil {
		if s.Secret {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		return fmt.Errorf("%s=%q: %w", s.Name, raw, err)
	}
	v.m[s] = value{raw: raw, src: src, v: parsed}
	return nil
}

// parse parses raw (possibly "", unset) as s's kind.
func (s *Setting) parse(raw string) (any, error) {
	switch s.Kind {
	case Int:
		if raw == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(raw)
		switch {
		case s.Min == 0 && s.Max == 0 && err != nil:
			return nil, errors.New("want a whole number")
		case s.Min != 0 || s.Max != 0:
			if err != nil || n < s.Min || n > s.Max {
				return nil, fmt.Errorf("want a whole number from %d to %d", s.Min, s.Max)
			}
		}
		return n, nil
	case Level:
		var l slog.Level
		if err := l.UnmarshalText([]byte(raw)); err != nil {
			return nil, errors.New("want debug, info, warn or error")
		}
		return l, nil
	case Duration:
		if raw == "" {
			return time.Duration(0), nil
		}
		return parseDuration(raw, s.ZeroOK)
	case Durations:
		var out []time.Duration
		for _, part := range split(raw) {
			d, err := parseDuration(part, false)
			if err != nil {
				return nil, errors.New("want positive durations such as 1s,5s,30s")
			}
			out = append(out, d)
		}
		return out, nil
	case List:
		return split(raw), nil
	case URL:
		if raw != "" {
			if u, err := url.Parse(raw); err != nil || u.Scheme == "" || u.Host == "" {
				return nil, errors.New("want an absolute URL such as http://host:port")
			}
		}
		return raw, nil
	default:
		return raw, nil
	}
}

func parseDuration(raw string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 || (d == 0 && !zeroOK) {
		if zeroOK {
			return 0, errors.New("want a duration such as \"2s\" or \"500ms\"")
		}
		return 0, errors.New("want a positive duration such as 10s")
	}
	return d, nil
}

// split splits a comma-separated list, trimming blanks and dropping empty items.
func split(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// get returns s's value; the default's when v is nil or s was not parsed.
func (v *Values) get(s *Setting) value {
	if v != nil {
		if x, ok := v.m[s]; ok {
			return x
		}
	}
	parsed, _ := s.parse(s.Default) // declared defaults parse (TestDeclarations)
	return value{raw: s.Default, src: FromDefault, v: parsed}
}

// String returns s's value as written: a String or URL setting's value, or
// the raw text of any other.
func (v *Values) String(s *Setting) string { return v.get(s).raw }

// Int returns an Int setting's value; 0 when unset.
func (v *Values) Int(s *Setting) int { n, _ := v.get(s).v.(int); return n }

// Duration returns a Duration setting's value; 0 when unset.
func (v *Values) Duration(s *Setting) time.Duration {
	d, _ := v.get(s).v.(time.Duration)
	return d
}

// Durations returns a Durations setting's values; nil when unset.
func (v *Values) Durations(s *Setting) []time.Duration {
	ds, _ := v.get(s).v.([]time.Duration)
	return ds
}

// List returns a List setting's items; nil when unset.
func (v *Values) List(s *Setting) []string {
	l, _ := v.get(s).v.([]string)
	return l
}

// Level returns a Level setting's value.
func (v *Values) Level(s *Setting) slog.Level {
	l, _ := v.get(s).v.(slog.Level)
	return l
}

// IsSet reports whether s has a value other than its default (from the
// environment or a flag), for settings whose being unset means "off".
func (v *Values) IsSet(s *Setting) bool { return v.get(s).src != FromDefault }

// Source returns where s's current value came from.
func (v *Values) Source(s *Setting) Source { return v.get(s).src }

// Shown is s's value as it may be printed: "****" for a set secret, and a
// URL's password masked.
func (v *Values) Shown(s *Setting) string {
	raw := v.String(s)
	switch {
	case raw == "":
		return ""
	case s.Secret:
		return "****"
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return raw
}

// Flag defines s's flag on fs: its name, usage and default come from the
// declaration, and setting it overrides s in v.
func (v *Values) Flag(fs *flag.FlagSet, s *Setting) {
	usage := fmt.Sprintf("%s (%s; `%s`)", s.Meaning, s.Name, s.Kind) // the flag package shows the backquoted kind as the flag's argument
	fs.Var(flagValue{v, s}, s.Flag, usage)
}

type flagValue struct {
	v *Values
	s *Setting
}

// String is the value shown as the flag's default: the current one, masked.
func (f flagValue) String() string {
	if f.v == nil || f.s == nil {
		return ""
	}
	return f.v.Shown(f.s)
}

func (f flagValue) Set(raw string) error {
	if err := f.v.set(f.s, raw, FromFlag); err != nil {
		return errors.Unwrap(err) // the flag package names the flag
	}
	return nil
}
