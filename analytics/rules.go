package analytics

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/stream/cep"
)

// Where the rules in force come from.
const (
	SourceFile     = "file"     // EVENTMART_ANALYTICS_RULES
	SourceAPI      = "api"      // PUT /api/v1/analytics/rules
	SourceStandard = "standard" // cep.StandardRules with EVENTMART_ANALYTICS_ORDER_SLA
)

// ParseRules reads a rule document (cep.ParseRules) and checks, beyond
// cep's own validation, that every step's event type is one the analytics
// service reads: a catalog type on a business topic. Errors are
// cep.ValidationErrors with the field's path.
func ParseRules(data []byte) ([]cep.Rule, error) {
	rules, err := cep.ParseRules(data)
	if err != nil {
		return nil, err
	}
	if err := checkEventTypes(rules); err != nil {
		return nil, err
	}
	return rules, nil
}

func checkEventTypes(rules []cep.Rule) error {
	read := map[event.Topic]bool{}
	for _, t := range event.BusinessTopics() {
		read[t] = true
	}
	var errs cep.ValidationErrors
	check := func(path, t string) {
		spec, ok := event.Lookup(event.Type(t))
		switch {
		case !ok:
			errs = append(errs, cep.ValidationError{Path: path, Problem: fmt.Sprintf("unknown event type %q (not in the event catalog)", t)})
		case !read[spec.Topic]:
			errs = append(errs, cep.ValidationError{Path: path, Problem: fmt.Sprintf("%s is on %s, which the analytics service does not read", t, spec.Topic)})
		}
	}
	for i, r := range rules {
		check(fmt.Sprintf("rules[%d].first.eventType", i), r.First.EventType)
		for j, s := range r.Then {
			check(fmt.Sprintf("rules[%d].then[%d].eventType", i, j), s.EventType)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// RuleSet is the rules in force and where they come from.
type RuleSet struct {
	Source  string     `json:"source"`
	Version int64      `json:"version,omitempty"` // SourceAPI: grows with each PUT
	File    string     `json:"file,omitempty"`    // SourceFile: the file
	Rules   []cep.Rule `json:"rules"`
	hash    [32]byte
}

// rulesLoader finds the rules in force: the file if one is set, else the
// document last PUT, else the standard rules.
type rulesLoader struct {
	file string
	sla  time.Duration
	// stored reads the API's document: (document, version, found, error).
	stored func(ctx context.Context) (string, int64, bool, error)
}

// load returns the rule set in force now.
func (l rulesLoader) load(ctx context.Context) (RuleSet, error) {
	if l.file != "" {
		data, err := os.ReadFile(l.file)
		if err != nil {
			return RuleSet{}, fmt.Errorf("analytics: rules file: %w", err)
		}
		rules, err := ParseRules(data)
		if err != nil {
			return RuleSet{}, fmt.Errorf("analytics: rules file %s: %w", l.file, err)
		}
		return RuleSet{Source: SourceFile, File: l.file, Rules: rules, hash: sha256.Sum256(data)}, nil
	}
	doc, version, ok, err := l.stored(ctx)
	if err != nil {
		return RuleSet{}, err
	}
	if ok {
		rules, err := ParseRules([]byte(doc))
		if err != nil {
			return RuleSet{}, fmt.Errorf("analytics: stored rules version %d: %w", version, err)
		}
		return RuleSet{Source: SourceAPI, Version: version, Rules: rules, hash: sha256.Sum256([]byte(doc))}, nil
	}
	rules := cep.StandardRules(l.sla)
	b, _ := json.Marshal(rules)
	return RuleSet{Source: SourceStandard, Rules: rules, hash: sha256.Sum256(b)}, nil
}
