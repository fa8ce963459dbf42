package event

import (
	"bytes"
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
	if spec.NewAt(v) == nil {
		return fmt.Errorf("event: %w: %s %q (supported: %s)", ErrUnsupportedVersion, t, v, strings.Join(spec.Versions(), ", "))
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
	return nil
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
