package event

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The JSON Schema (draft-07) of every event type at every version the
// catalog accepts, one file each: schemas/<EventType>.<version>.json. They
// are generated from the payload types (`go generate ./event`, or
// `eventmart schema gen`); a test fails when they drift apart. The second
// run writes docs/asyncapi.json from the schemas the first one wrote.
//
//go:generate go run ./internal/gen -dir schemas
//go:generate go run ./internal/gen -dir schemas -asyncapi ../docs/asyncapi.json
//go:embed schemas/*.json
var schemaFiles embed.FS

// SchemaDialect is the JSON Schema draft every event schema declares.
const SchemaDialect = "http://json-schema.org/draft-07/schema#"

// SchemaFile is the file name of the schema of t at version v, relative to
// the schemas directory: "OrderCreated.v2.json".
func SchemaFile(t Type, v string) string { return string(t) + "." + v + ".json" }

// Schema returns the JSON Schema document of t's payload at version v.
func Schema(t Type, v string) ([]byte, bool) {
	b, err := schemaFiles.ReadFile("schemas/" + SchemaFile(t, v))
	if err != nil {
		return nil, false
	}
	return b, true
}

// SchemaError says why a payload does not conform to its schema. It wraps
// ErrInvalidPayload.
type SchemaError struct {
	Type    Type
	Version string
	// Violations are "at '/json/pointer': what is wrong", one per failing
	// keyword, sorted.
	Violations []string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("event: invalid payload: %s %s does not match its schema: %s", e.Type, e.Version, strings.Join(e.Violations, "; "))
}

// Unwrap makes errors.Is(err, ErrInvalidPayload) true.
func (e *SchemaError) Unwrap() error { return ErrInvalidPayload }

var printer = message.NewPrinter(language.English)

var compiled sync.Map // SchemaFile -> *jsonschema.Schema

func compiledSchema(t Type, v string) (*jsonschema.Schema, error) {
	name := SchemaFile(t, v)
	if s, ok := compiled.Load(name); ok {
		return s.(*jsonschema.Schema), nil
	}
	b, ok := Schema(t, v)
	if !ok {
		return nil, fmt.Errorf("event: no schema %s in the catalog", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("event: schema %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	url := "file:///schemas/" + name
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("event: schema %s: %w", name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("event: schema %s: %w", name, err)
	}
	compiled.Store(name, s)
	return s, nil
}

// ValidatePayload checks data, a payload's JSON, against the schema of t
// at version v. A mismatch is a *SchemaError; a type or version without a
// schema wraps ErrUnknownType or ErrUnsupportedVersion.
func ValidatePayload(t Type, v string, data []byte) error {
	spec, ok := Lookup(t)
	if !ok {
		return fmt.Errorf("event: %w: %q", ErrUnknownType, t)
	}
	if !spec.hasVersion(v) {
		return fmt.Errorf("event: %w: %s %q (supported: %s)", ErrUnsupportedVersion, t, v, strings.Join(spec.Versions(), ", "))
	}
	key := validKey(t, v, data)
	if valid.has(key) {
		return nil
	}
	if q := quickSchemaOf(t, v); q != nil && quickValid(q, data) {
		valid.add(key)
		return nil
	}
	s, err := compiledSchema(t, v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &SchemaError{Type: t, Version: v, Violations: []string{"not JSON: " + err.Error()}}
	}
	if err := s.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("event: validate %s %s: %w", t, v, err)
		}
		return &SchemaError{Type: t, Version: v, Violations: violations(ve)}
	}
	valid.add(key)
	return nil
}

// valid remembers the payloads this process found valid. An event is
// validated by its producer and again by every consumer group, and in
// `eventmart run` they all share one process: the same bytes are checked
// once. The key is a SHA-256 of type, version and payload, so only the
// very same bytes skip validation.
var valid = &validCache{}

// validCacheSize bounds each of the cache's two generations.
const validCacheSize = 8192

// validCache is a set in two generations: when the current one is full it
// becomes the old one, and the old one is dropped.
type validCache struct {
	mu       sync.Mutex
	cur, old map[[sha256.Size]byte]struct{}
}

func validKey(t Type, v string, data []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(t))
	h.Write([]byte{0})
	h.Write([]byte(v))
	h.Write([]byte{0})
	h.Write(data)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *validCache) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.cur[k]
	if !ok {
		_, ok = c.old[k]
	}
	return ok
}

func (c *validCache) add(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= validCacheSize || c.cur == nil {
		c.old, c.cur = c.cur, make(map[[sha256.Size]byte]struct{}, validCacheSize)
	}
	c.cur[k] = struct{}{}
}

// violations flattens a validation error to its leaves.
func violations(ve *jsonschema.ValidationError) []string {
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, fmt.Sprintf("at '/%s': %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(out)
	return out
}
