package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/eventmart/eventmart/internal/fsperm"
)

// Store is the built-in registry's state in one JSON file
// (<dir>/schema-registry.json). Every operation locks the file (flock on
// <dir>/schema-registry.lock), reads it, and writes it back atomically if
// it changed, so several processes sharing a data directory (eventmart
// run, eventmart schema …) see one registry.
type Store struct {
	path, lock string
}

// state is the file's content.
type state struct {
	NextID   int              `json:"nextId"`
	Global   Mode             `json:"global,omitempty"`
	Configs  map[string]Mode  `json:"configs"`
	Schemas  map[int]stored   `json:"schemas"`  // by id
	Subjects map[string][]int `json:"subjects"` // schema id of each version, version n at index n-1
}

type stored struct {
	Schema string `json:"schema"`
	Type   string `json:"schemaType"`
}

// OpenStore returns the store in dir, creating dir if needed.
func OpenStore(dir string) (*Store, error) {
	if err := fsperm.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Store{path: filepath.Join(dir, "schema-registry.json"), lock: filepath.Join(dir, "schema-registry.lock")}, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// update runs fn on the current state under the lock and saves the state
// if fn changed it.
func (s *Store) update(fn func(st *state) error) error {
	f, err := os.OpenFile(s.lock, os.O_CREATE|os.O_RDWR, fsperm.File)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("registry: lock %s: %w", s.lock, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too

	st := &state{NextID: 1}
	before, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("registry: %w", err)
	default:
		if err := json.Unmarshal(before, st); err != nil {
			return fmt.Errorf("registry: %s is corrupt: %w", s.path, err)
		}
	}
	if st.Configs == nil {
		st.Configs = map[string]Mode{}
	}
	if st.Schemas == nil {
		st.Schemas = map[int]stored{}
	}
	if st.Subjects == nil {
		st.Subjects = map[string][]int{}
	}
	unchanged, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := fn(st); err != nil {
		return err
	}
	after, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if bytes.Equal(unchanged, after) {
		return nil // a read: nothing to write
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, after, fsperm.File); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("registry: sync %s: %w", path, err)
	}
	return nil
}

// Error is a registry error with the Confluent API's error code (40401
// subject not found, 409 incompatible, 42201 invalid schema, …).
type Error struct {
	Status int // HTTP status
	Code   int // error_code
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func notFound(code int, format string, args ...any) error {
	return &Error{Status: 404, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalid(code int, format string, args ...any) error {
	return &Error{Status: 422, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Version is one registered version of a subject.
type Version struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
	Type    string `json:"schemaType,omitempty"`
}

// canonical is the schema's compact JSON, the identity of a schema.
func canonical(schema string) (string, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(schema)); err != nil {
		return "", invalid(42201, "Invalid schema: not JSON: %v", err)
	}
	if _, err := parse(buf.Bytes()); err != nil {
		return "", invalid(42201, "Invalid schema: %v", err)
	}
	return buf.String(), nil
}

func schemaType(t string) (string, error) {
	switch t {
	case "JSON":
		return "JSON", nil
	case "", "AVRO", "PROTOBUF":
		return "", invalid(42201, "Invalid schema: schemaType %q is not supported by the built-in registry (JSON only)", t)
	}
	return "", invalid(42201, "Invalid schema: unknown schemaType %q", t)
}

func (st *state) versions(subject string) []int {
	out := make([]int, len(st.Subjects[subject]))
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func (st *state) mode(subject string) Mode {
	if m, ok := st.Configs[subject]; ok && subject != "" {
		return m
	}
	if st.Global != "" {
		return st.Global
	}
	return DefaultMode
}

// live returns the schema texts of subject's versions, oldest first.
func (st *state) live(subject string) [][]byte {
	var out [][]byte
	for _, v := range st.versions(subject) {
		out = append(out, []byte(st.Schemas[st.Subjects[subject][v-1]].Schema))
	}
	return out
}

// Subjects lists the subjects with at least one version, sorted.
func (s *Store) Subjects() ([]string, error) {
	var out []string
	err := s.update(func(st *state) error {
		for sub := range st.Subjects {
			if len(st.versions(sub)) > 0 {
				out = append(out, sub)
			}
		}
		sort.Strings(out)
		return nil
	})
	return out, err
}

// Versions lists subject's version numbers.
func (s *Store) Versions(subject string) ([]int, error) {
	var out []int
	err := s.update(func(st *state) error {
		out = st.versions(subject)
		if len(out) == 0 {
			return notFound(40401, "Subject '%s' not found.", subject)
		}
		return nil
	})
	return out, err
}

// Get returns version v of subject (-1: the latest).
func (s *Store) Get(subject string, v int) (Version, error) {
	var out Version
	err := s.update(func(st *state) error {
		vs := st.versions(subject)
		if len(vs) == 0 {
			return notFound(40401, "Subject '%s' not found.", subject)
		}
		if v == -1 {
			v = vs[len(vs)-1]
		}
		if !slices.Contains(vs, v) {
			return notFound(40402, "Version %d not found.", v)
		}
		id := st.Subjects[subject][v-1]
		out = Version{Subject: subject, Version: v, ID: id, Schema: st.Schemas[id].Schema, Type: st.Schemas[id].Type}
		return nil
	})
	return out, err
}

// SchemaByID returns the schema with id.
func (s *Store) SchemaByID(id int) (Version, error) {
	var out Version
	err := s.update(func(st *state) error {
		sc, ok := st.Schemas[id]
		if !ok {
			return notFound(40403, "Schema %d not found", id)
		}
		out = Version{ID: id, Schema: sc.Schema, Type: sc.Type}
		return nil
	})
	return out, err
}

// Lookup returns the version of subject holding schema.
func (s *Store) Lookup(subject, schema, typ string) (Version, error) {
	c, err := canonical(schema)
	if err != nil {
		return Version{}, err
	}
	var out Version
	err = s.update(func(st *state) error {
		vs := st.versions(subject)
		if len(vs) == 0 {
			return notFound(40401, "Subject '%s' not found.", subject)
		}
		for _, v := range vs {
			id := st.Subjects[subject][v-1]
			if st.Schemas[id].Schema == c {
				out = Version{Subject: subject, Version: v, ID: id, Schema: c, Type: st.Schemas[id].Type}
				return nil
			}
		}
		return notFound(40403, "Schema not found")
	})
	return out, err
}

// IncompatibleError is a rejected registration: the violations under the
// subject's compatibility level.
type IncompatibleError struct {
	Subject    string
	Violations []Violation
	Registry   string // a remote registry's own message, if the refusal came from one
}

func (e *IncompatibleError) Error() string {
	msgs := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		msgs[i] = v.String()
	}
	s := fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q: %s", e.Subject, strings.Join(msgs, "; "))
	if e.Registry != "" {
		s += " (registry: " + e.Registry + ")"
	}
	return s
}

// Register adds schema to subject as a new version, unless an identical
// schema is already a version of it (then that one's id is returned). A
// schema incompatible under the subject's level is an *IncompatibleError.
func (s *Store) Register(subject, schema, typ string) (int, error) {
	if subject == "" {
		return 0, invalid(42208, "Invalid subject: empty")
	}
	t, err := schemaType(typ)
	if err != nil {
		return 0, err
	}
	c, err := canonical(schema)
	if err != nil {
		return 0, err
	}
	var id int
	err = s.update(func(st *state) error {
		for _, v := range st.versions(subject) {
			if old := st.Subjects[subject][v-1]; st.Schemas[old].Schema == c {
				id = old
				return nil
			}
		}
		viol, err := Check(st.mode(subject), st.live(subject), []byte(c))
		if err != nil {
			return invalid(42201, "Invalid schema: %v", err)
		}
		if len(viol) > 0 {
			return &IncompatibleError{Subject: subject, Violations: viol}
		}
		id = 0
		for sid, sc := range st.Schemas {
			if sc.Schema == c && sc.Type == t {
				id = sid
			}
		}
		if id == 0 {
			id = st.NextID
			st.NextID++
			st.Schemas[id] = stored{Schema: c, Type: t}
		}
		st.Subjects[subject] = append(st.Subjects[subject], id)
		return nil
	})
	return id, err
}

// CheckCompatibility checks schema against subject's version v (-1: the
// latest, -2: every version the subject's level checks) under the
// subject's level.
func (s *Store) CheckCompatibility(subject string, v int, schema, typ string) ([]Violation, error) {
	if _, err := schemaType(typ); err != nil {
		return nil, err
	}
	c, err := canonical(schema)
	if err != nil {
		return nil, err
	}
	var out []Violation
	err = s.update(func(st *state) error {
		vs := st.versions(subject)
		if len(vs) == 0 {
			return nil // nothing to be incompatible with (as Apicurio answers)
		}
		against := st.live(subject)
		mode := st.mode(subject)
		if v != -2 {
			if v == -1 {
				v = vs[len(vs)-1]
			}
			if !slices.Contains(vs, v) {
				return notFound(40402, "Version %d not found.", v)
			}
			against = [][]byte{[]byte(st.Schemas[st.Subjects[subject][v-1]].Schema)}
		}
		out, err = Check(mode, against, []byte(c))
		if err != nil {
			return invalid(42201, "Invalid schema: %v", err)
		}
		return nil
	})
	return out, err
}

// Config returns subject's own level ("" for the global one), falling back
// to the global level if fallback is set; a subject without its own level
// and no fallback is a 40408 error.
func (s *Store) Config(subject string, fallback bool) (Mode, error) {
	var out Mode
	err := s.update(func(st *state) error {
		if subject == "" {
			out = st.mode("")
			return nil
		}
		if m, ok := st.Configs[subject]; ok {
			out = m
			return nil
		}
		if fallback {
			out = st.mode("")
			return nil
		}
		return notFound(40408, "Subject '%s' does not have subject-level compatibility configured", subject)
	})
	return out, err
}

// SetConfig sets subject's level ("" for the global one).
func (s *Store) SetConfig(subject string, m Mode) error {
	if _, err := ParseMode(string(m)); err != nil {
		return invalid(42203, "Invalid compatibility level %q", m)
	}
	return s.update(func(st *state) error {
		if subject == "" {
			st.Global = m
		} else {
			st.Configs[subject] = m
		}
		return nil
	})
}

// DeleteConfig removes subject's own level and returns it.
func (s *Store) DeleteConfig(subject string) (Mode, error) {
	var out Mode
	err := s.update(func(st *state) error {
		if subject == "" {
			out, st.Global = st.mode(""), ""
			return nil
		}
		m, ok := st.Configs[subject]
		if !ok {
			return notFound(40408, "Subject '%s' does not have subject-level compatibility configured", subject)
		}
		out = m
		delete(st.Configs, subject)
		return nil
	})
	return out, err
}

// DeleteSubject removes subject and its level; it returns the versions it
// had. (The built-in registry deletes permanently at once.)
func (s *Store) DeleteSubject(subject string) ([]int, error) {
	var out []int
	err := s.update(func(st *state) error {
		out = st.versions(subject)
		if len(out) == 0 {
			return notFound(40401, "Subject '%s' not found.", subject)
		}
		delete(st.Subjects, subject)
		delete(st.Configs, subject)
		return nil
	})
	return out, err
}
