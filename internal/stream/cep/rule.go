package cep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is what a rule detects.
type Kind string

// The rule kinds.
const (
	// FollowedBy: a First event, then a Then event of the same key within
	// Within. One detection per First event matched (evidence: both ids).
	FollowedBy Kind = "followedBy"
	// NotFollowedBy: a First event not followed by any Then event of the
	// same key within Within; the detection fires when the watermark passes
	// the First event's time + Within (evidence: the First event's id).
	NotFollowedBy Kind = "notFollowedBy"
	// Count: Count First events of one key within Within (the last no later
	// than Within after the first). The events of a detection are consumed:
	// the next detection needs Count new events (evidence: their ids).
	Count Kind = "count"
	// WhileHeld: a Then event for a key while holders hold that key. First
	// events say, for their holder, the whole set of keys it holds now
	// (a cart's full contents); a hold lasts until the holder's next First
	// event or Within after it. One detection per Then event and key that
	// has holders (evidence: up to MaxHolderEvidence holders' latest First
	// events, then the Then event).
	WhileHeld Kind = "whileHeld"
)

// Rule is one pattern, as data. Rules are usually read from a JSON
// document with ParseRules; Validate checks Go-built rules.
type Rule struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Detection is the detection's event type; empty means Name.
	Detection string   `json:"detection,omitempty"`
	Kind      Kind     `json:"kind"`
	Within    Duration `json:"within"`
	Count     int      `json:"count,omitempty"` // Count rules: how many, ≥ 2
	First     Step     `json:"first"`
	Then      []Step   `json:"then,omitempty"` // alternatives: any one of them
	// DryRun marks the rule's detections as not to be acted on.
	DryRun bool `json:"dryRun,omitempty"`
}

// Step selects events: of one type, passing every Where condition, and
// gives each its match key.
type Step struct {
	EventType string `json:"eventType"`
	// Each, when set, is the path of an array in the payload; the step then
	// applies to every element: Key and Where are read from the element,
	// and one event can give several keys.
	Each string `json:"each,omitempty"`
	// Key is the path of the match key (a string, number or bool).
	Key string `json:"key"`
	// Holder is the path, in the payload (not the element), of the holder's
	// id; only for a WhileHeld rule's First step.
	Holder string      `json:"holder,omitempty"`
	Where  []Condition `json:"where,omitempty"`
}

// Condition compares the value at Path with Value. Ops: eq, ne (any
// scalar), lt, le, gt, ge (numbers with numbers, strings with strings).
// A missing path fails every op but ne.
type Condition struct {
	Path  string `json:"path"`
	Op    string `json:"op"`
	Value any    `json:"value"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("10m").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"10m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Document is the JSON form of a rule set: {"rules": [...]}.
type Document struct {
	Rules []Rule `json:"rules"`
}

// ValidationError is one problem with a rule set: the field's path
// ("rules[2].first.where[0].op") and what is wrong with it.
type ValidationError struct {
	Path    string
	Problem string
}

func (e ValidationError) Error() string { return e.Path + ": " + e.Problem }

// ValidationErrors are all the problems found; ParseRules and Validate
// return them (check with errors.As).
type ValidationErrors []ValidationError

func (es ValidationErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return "invalid rules: " + strings.Join(parts, "; ")
}

// ErrInvalidRules is matched by ValidationErrors via errors.Is.
var ErrInvalidRules = errors.New("invalid rules")

// Is lets errors.Is(err, ErrInvalidRules) match.
func (es ValidationErrors) Is(target error) bool { return target == ErrInvalidRules }

// ParseRules reads a Document strictly (unknown fields are errors) and
// validates it.
func ParseRules(data []byte) ([]Rule, error) {
	var raw struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if err := strictDecode(data, &raw); err != nil {
		return nil, ValidationErrors{{Path: "document", Problem: err.Error()}}
	}
	if raw.Rules == nil {
		return nil, ValidationErrors{{Path: "rules", Problem: "missing"}}
	}
	var errs ValidationErrors
	rules := make([]Rule, len(raw.Rules))
	for i, r := range raw.Rules {
		if err := strictDecode(r, &rules[i]); err != nil {
			errs = append(errs, ValidationError{Path: fmt.Sprintf("rules[%d]", i), Problem: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := Validate(rules); err != nil {
		return nil, err
	}
	return rules, nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Validate checks a rule set; the error, if any, is ValidationErrors.
func Validate(rules []Rule) error {
	var errs ValidationErrors
	bad := func(path, format string, args ...any) {
		errs = append(errs, ValidationError{Path: path, Problem: fmt.Sprintf(format, args...)})
	}
	names := make(map[string]int)
	for i, r := range rules {
		p := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.Name == "":
			bad(p+".name", "missing")
		default:
			if j, dup := names[r.Name]; dup {
				bad(p+".name", "%q is also the name of rules[%d]", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if r.Within <= 0 {
			bad(p+".within", "must be a positive duration, got %q", time.Duration(r.Within).String())
		}
		switch r.Kind {
		case FollowedBy, NotFollowedBy, WhileHeld:
			if len(r.Then) == 0 {
				bad(p+".then", "a %s rule needs at least one step", r.Kind)
			}
			if r.Count != 0 {
				bad(p+".count", "only for kind %q", Count)
			}
		case Count:
			if r.Count < 2 {
				bad(p+".count", "must be at least 2, got %d", r.Count)
			}
			if len(r.Then) != 0 {
				bad(p+".then", "a count rule has no then steps")
			}
		case "":
			bad(p+".kind", "missing (want %s, %s, %s or %s)", FollowedBy, NotFollowedBy, Count, WhileHeld)
		default:
			bad(p+".kind", "unknown kind %q (want %s, %s, %s or %s)", r.Kind, FollowedBy, NotFollowedBy, Count, WhileHeld)
		}
		validateStep(p+".first", r.First, r.Kind == WhileHeld, bad)
		for j, s := range r.Then {
			validateStep(fmt.Sprintf("%s.then[%d]", p, j), s, false, bad)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func validateStep(p string, s Step, needsHolder bool, bad func(string, string, ...any)) {
	if s.EventType == "" {
		bad(p+".eventType", "missing")
	}
	checkPath := func(field, v string, required bool) {
		if v == "" {
			if required {
				bad(p+"."+field, "missing")
			}
			return
		}
		if _, ok := parsePath(v); !ok {
			bad(p+"."+field, "%q is not a dotted path (fields separated by single dots)", v)
		}
	}
	checkPath("key", s.Key, true)
	checkPath("each", s.Each, false)
	switch {
	case needsHolder:
		checkPath("holder", s.Holder, true)
	case s.Holder != "":
		bad(p+".holder", "only for the first step of a %s rule", WhileHeld)
	}
	for k, c := range s.Where {
		cp := fmt.Sprintf("%s.where[%d]", p, k)
		if _, ok := parsePath(c.Path); !ok {
			if c.Path == "" {
				bad(cp+".path", "missing")
			} else {
				bad(cp+".path", "%q is not a dotted path (fields separated by single dots)", c.Path)
			}
		}
		if _, err := compileCondition(c); err != nil {
			var ce conditionError
			if errors.As(err, &ce) {
				bad(cp+"."+ce.field, "%s", ce.problem)
			}
		}
	}
}
