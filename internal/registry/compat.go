// Package registry is Eventmart's schema registry: the compatibility rules
// of JSON Schema evolution, a built-in file-backed registry serving a subset
// of the Confluent-compatible REST API (the one Apicurio Registry offers at
// /apis/ccompat/v7), and the catalog's registration and checks through
// franz-go's sr client against either.
package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
)

// Mode is a compatibility level, as the Confluent API names it.
type Mode string

// The compatibility levels. BACKWARD: a new schema reads records written
// with the latest registered one (upgrade consumers first); FORWARD: the
// latest registered schema reads records written with the new one (upgrade
// producers first); FULL: both; the _TRANSITIVE forms check every
// registered version, not only the latest; NONE checks nothing.
const (
	Backward           Mode = "BACKWARD"
	BackwardTransitive Mode = "BACKWARD_TRANSITIVE"
	Forward            Mode = "FORWARD"
	ForwardTransitive  Mode = "FORWARD_TRANSITIVE"
	Full               Mode = "FULL"
	FullTransitive     Mode = "FULL_TRANSITIVE"
	None               Mode = "NONE"
)

// DefaultMode is the compatibility level of a subject without its own.
const DefaultMode = Backward

// Modes lists every level.
var Modes = []Mode{Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive, None}

// ParseMode accepts a level's name in any case.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToUpper(strings.TrimSpace(s)))
	if slices.Contains(Modes, m) {
		return m, nil
	}
	return "", fmt.Errorf("registry: unknown compatibility level %q (want one of %v)", s, Modes)
}

func (m Mode) transitive() bool { return strings.HasSuffix(string(m), "_TRANSITIVE") }
func (m Mode) backward() bool {
	return strings.HasPrefix(string(m), "BACKWARD") || strings.HasPrefix(string(m), "FULL")
}
func (m Mode) forward() bool {
	return strings.HasPrefix(string(m), "FORWARD") || strings.HasPrefix(string(m), "FULL")
}

// Violation is one incompatible difference between a proposed schema and a
// registered version.
type Violation struct {
	Mode      Mode   // the level that forbids it
	Direction string // "BACKWARD" (new reads old) or "FORWARD" (old reads new)
	Version   int    // the registered version it conflicts with (1-based position in the list checked)
	Path      string // JSON pointer into the schema, "/properties/customer/required"
	Field     string // the payload field, "customer.email", "" for the whole payload
	Rule      string // the difference's name, as Apicurio's JSON Schema diff calls it
	Message   string // what changed, for people
}

func (v Violation) String() string {
	field := v.Field
	if field == "" {
		field = "(payload)"
	}
	reader := "the new schema cannot read records written with version %d"
	if v.Direction == "FORWARD" {
		reader = "version %d cannot read records written with the new schema"
	}
	return fmt.Sprintf("field %q: %s [%s at %s] — %s forbids it: "+reader, field, v.Message, v.Rule, v.Path, v.Mode, v.Version)
}

// Check returns the violations of proposed against the registered
// versions (oldest first) under mode: none means compatible. A schema that
// is not JSON is an error.
func Check(mode Mode, registered [][]byte, proposed []byte) ([]Violation, error) {
	if mode == None || len(registered) == 0 {
		return nil, nil
	}
	p, err := parse(proposed)
	if err != nil {
		return nil, fmt.Errorf("registry: proposed schema: %w", err)
	}
	first := len(registered) - 1
	if mode.transitive() {
		first = 0
	}
	var out []Violation
	for i := first; i < len(registered); i++ {
		old, err := parse(registered[i])
		if err != nil {
			return nil, fmt.Errorf("registry: registered version %d: %w", i+1, err)
		}
		if mode.backward() {
			for _, d := range incompatible(old, p) {
				out = append(out, d.violation(mode, "BACKWARD", i+1))
			}
		}
		if mode.forward() {
			for _, d := range incompatible(p, old) {
				out = append(out, d.violation(mode, "FORWARD", i+1))
			}
		}
	}
	return out, nil
}

func parse(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	switch v.(type) {
	case map[string]any, bool:
		return v, nil
	}
	return nil, fmt.Errorf("a JSON Schema is an object or a boolean")
}

// diff is one difference found between an original (reader/writer) schema
// and an updated one. compatible says whether the updated schema still
// reads what the original described.
type diff struct {
	path       string
	member     string // for set-member differences (required, enum): the member
	rule       string
	compatible bool
}

func (d diff) violation(m Mode, dir string, version int) Violation {
	msg := ruleText[d.rule]
	if strings.HasPrefix(d.rule, "ENUM_TYPE") {
		msg += fmt.Sprintf(" (%q)", d.member)
	}
	return Violation{Mode: m, Direction: dir, Version: version, Path: d.path, Field: fieldOf(d.path, d.member, d.rule),
		Rule: d.rule, Message: msg}
}

// fieldOf turns a schema path into the payload field it constrains:
// /properties/a/items/properties/b -> a[].b.
func fieldOf(path, member, rule string) string {
	var parts []string
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := 0; i < len(segs); i++ {
		switch segs[i] {
		case "properties":
			if i+1 < len(segs) {
				parts = append(parts, segs[i+1])
				i++
			}
		case "items":
			if len(parts) > 0 {
				parts[len(parts)-1] += "[]"
			} else {
				parts = append(parts, "[]")
			}
		}
	}
	if member != "" && (strings.HasPrefix(rule, "OBJECT_TYPE_REQUIRED") || strings.HasPrefix(rule, "OBJECT_TYPE_PROPERTY_SCHEMAS")) {
		parts = append(parts, member)
	}
	return strings.Join(parts, ".")
}

// ruleText describes the differences this checker reports, named as in
// Apicurio Registry's JSON Schema diff (io.apicurio...jsonschema.diff.DiffType).
var ruleText = map[string]string{
	"SUBSCHEMA_TYPE_CHANGED":                                                      "the type changed",
	"OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED":                                "a required property was added",
	"OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_REMOVED":                              "a property is no longer required",
	"OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED":                                       "a property was added or removed while additionalProperties does not accept it",
	"OBJECT_TYPE_PROPERTY_SCHEMAS_EXTENDED":                                       "a property was added or removed within what additionalProperties accepts",
	"OBJECT_TYPE_PROPERTY_SCHEMAS_CHANGED":                                        "a property was added or removed that additionalProperties' schema does not match",
	"OBJECT_TYPE_ADDITIONAL_PROPERTIES_TRUE_TO_FALSE":                             "additionalProperties changed from allowed to false",
	"OBJECT_TYPE_ADDITIONAL_PROPERTIES_FALSE_TO_TRUE":                             "additionalProperties changed from false to allowed",
	"OBJECT_TYPE_ADDITIONAL_PROPERTIES_NARROWED":                                  "additionalProperties' schema was narrowed",
	"OBJECT_TYPE_ADDITIONAL_PROPERTIES_SCHEMA_CHANGED":                            "additionalProperties' schema changed",
	"OBJECT_TYPE_MIN_PROPERTIES_ADDED":                                            "minProperties was added",
	"OBJECT_TYPE_MIN_PROPERTIES_INCREASED":                                        "minProperties was increased",
	"OBJECT_TYPE_MAX_PROPERTIES_ADDED":                                            "maxProperties was added",
	"OBJECT_TYPE_MAX_PROPERTIES_DECREASED":                                        "maxProperties was decreased",
	"ARRAY_TYPE_MIN_ITEMS_ADDED":                                                  "minItems was added",
	"ARRAY_TYPE_MIN_ITEMS_INCREASED":                                              "minItems was increased",
	"ARRAY_TYPE_MAX_ITEMS_ADDED":                                                  "maxItems was added",
	"ARRAY_TYPE_MAX_ITEMS_DECREASED":                                              "maxItems was decreased",
	"ARRAY_TYPE_UNIQUE_ITEMS_FALSE_TO_TRUE":                                       "uniqueItems became true",
	"ARRAY_TYPE_ALL_ITEM_SCHEMA_ADDED":                                            "an items schema was added",
	"ARRAY_TYPE_ADDITIONAL_ITEMS_TRUE_TO_FALSE":                                   "additionalItems became false",
	"STRING_TYPE_MIN_LENGTH_ADDED":                                                "minLength was added",
	"STRING_TYPE_MIN_LENGTH_INCREASED":                                            "minLength was increased",
	"STRING_TYPE_MAX_LENGTH_ADDED":                                                "maxLength was added",
	"STRING_TYPE_MAX_LENGTH_DECREASED":                                            "maxLength was decreased",
	"STRING_TYPE_PATTERN_ADDED":                                                   "a pattern was added",
	"STRING_TYPE_PATTERN_CHANGED":                                                 "the pattern changed",
	"STRING_TYPE_FORMAT_ADDED":                                                    "a format was added",
	"STRING_TYPE_FORMAT_CHANGED":                                                  "the format changed",
	"STRING_TYPE_CONTENT_ENCODING_ADDED":                                          "contentEncoding was added",
	"STRING_TYPE_CONTENT_ENCODING_CHANGED":                                        "contentEncoding changed",
	"STRING_TYPE_CONTENT_MEDIA_TYPE_ADDED":                                        "contentMediaType was added",
	"STRING_TYPE_CONTENT_MEDIA_TYPE_CHANGED":                                      "contentMediaType changed",
	"CONST_TYPE_VALUE_CHANGED":                                                    "the const value changed",
	"ENUM_TYPE_VALUES_MEMBER_REMOVED":                                             "an enum value was removed",
	"ENUM_TYPE_VALUES_MEMBER_ADDED":                                               "an enum value was added",
	"NUMBER_TYPE_MINIMUM_ADDED":                                                   "a minimum was added",
	"NUMBER_TYPE_MINIMUM_INCREASED":                                               "the minimum was increased",
	"NUMBER_TYPE_MAXIMUM_ADDED":                                                   "a maximum was added",
	"NUMBER_TYPE_MAXIMUM_DECREASED":                                               "the maximum was decreased",
	"NUMBER_TYPE_IS_MINIMUM_EXCLUSIVE_FALSE_TO_TRUE":                              "the minimum became exclusive",
	"NUMBER_TYPE_IS_MAXIMUM_EXCLUSIVE_FALSE_TO_TRUE":                              "the maximum became exclusive",
	"NUMBER_TYPE_MULTIPLE_OF_ADDED":                                               "multipleOf was added",
	"NUMBER_TYPE_MULTIPLE_OF_UPDATED_IS_NOT_DIVISIBLE":                            "multipleOf changed to a value the old one is not a multiple of",
	"NUMBER_TYPE_INTEGER_REQUIRED_FALSE_TO_TRUE":                                  "number became integer",
	"COMBINED_TYPE_CRITERION_NARROWED":                                            "the combination (anyOf/allOf/oneOf) was narrowed",
	"COMBINED_TYPE_CRITERION_CHANGED":                                             "the combination (anyOf/allOf/oneOf) changed",
	"COMBINED_TYPE_ONE_OF_SIZE_DECREASED":                                         "a oneOf alternative (or a type of a type list) was removed",
	"COMBINED_TYPE_ANY_OF_SIZE_DECREASED":                                         "an anyOf alternative (or a type of a type list) was removed",
	"COMBINED_TYPE_ALL_OF_SIZE_INCREASED":                                         "an allOf member was added",
	"COMBINED_TYPE_SUBSCHEMA_NOT_COMPATIBLE":                                      "an alternative has no compatible counterpart",
	"UNSUPPORTED_KEYWORD_CHANGED":                                                 "a keyword this checker does not analyse changed",
	"OBJECT_TYPE_ADDITIONAL_PROPERTIES_EXTENDED":                                  "additionalProperties' schema was widened",
	"OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED_COMPATIBLE_WITH_ADDITIONAL_PROPERTIES": "a property was removed that additionalProperties' schema still matches",
}

// incompatible returns the differences of updated against original that
// are not compatible (updated cannot read everything original described).
func incompatible(original, updated any) []diff {
	var out []diff
	for _, d := range differences(original, updated) {
		if !d.compatible {
			out = append(out, d)
		}
	}
	return out
}

func differences(original, updated any) []diff {
	c := &differ{}
	c.schema("", original, updated)
	return c.diffs
}

// compatible reports whether updated reads everything original described.
func compatible(original, updated any) bool { return len(incompatible(original, updated)) == 0 }

type differ struct{ diffs []diff }

func (c *differ) add(path, rule string, ok bool) {
	c.diffs = append(c.diffs, diff{path: path, rule: rule, compatible: ok})
}

func (c *differ) addMember(path, member, rule string, ok bool) {
	c.diffs = append(c.diffs, diff{path: path, member: member, rule: rule, compatible: ok})
}

// node is a schema classified the way Apicurio's checker (built on the
// everit JSON Schema model) sees it.
type node struct {
	kind     string // object, array, string, number, boolean, null, enum, const, combined, empty, false
	m        map[string]any
	integer  bool    // number kind: "integer"
	criteria string  // combined: anyOf, allOf, oneOf
	subs     []*node // combined
}

var typedKinds = map[string]string{"object": "object", "array": "array", "string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}

func classify(s any) *node {
	switch v := s.(type) {
	case bool:
		if v {
			return &node{kind: "empty", m: map[string]any{}}
		}
		return &node{kind: "false", m: map[string]any{}}
	case map[string]any:
		return classifyMap(v)
	}
	return &node{kind: "empty", m: map[string]any{}}
}

func without(m map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}

func classifyMap(m map[string]any) *node {
	for _, crit := range []string{"anyOf", "allOf", "oneOf"} {
		if list, ok := m[crit].([]any); ok {
			n := &node{kind: "combined", m: m, criteria: crit}
			for _, s := range list {
				n.subs = append(n.subs, classify(s))
			}
			return n
		}
	}
	var types []string
	switch t := m["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				types = append(types, s)
			}
		}
	}
	if _, hasEnum := m["enum"]; hasEnum && len(types) > 0 {
		return &node{kind: "combined", m: m, criteria: "allOf", subs: []*node{classifyMap(without(m, "enum")), {kind: "enum", m: m}}}
	}
	if len(types) > 1 {
		n := &node{kind: "combined", m: m, criteria: "anyOf"}
		for _, t := range types {
			sub := without(m, "type")
			sub["type"] = t
			n.subs = append(n.subs, classifyMap(sub))
		}
		return n
	}
	if len(types) == 1 {
		k, ok := typedKinds[types[0]]
		if !ok {
			return &node{kind: "empty", m: m}
		}
		return &node{kind: k, m: m, integer: types[0] == "integer"}
	}
	if _, ok := m["enum"]; ok {
		return &node{kind: "enum", m: m}
	}
	if _, ok := m["const"]; ok {
		return &node{kind: "const", m: m}
	}
	for _, k := range []string{"properties", "required", "additionalProperties", "minProperties", "maxProperties"} {
		if _, ok := m[k]; ok {
			return &node{kind: "object", m: m}
		}
	}
	for _, k := range []string{"items", "minItems", "maxItems", "uniqueItems"} {
		if _, ok := m[k]; ok {
			return &node{kind: "array", m: m}
		}
	}
	for _, k := range []string{"minLength", "maxLength", "pattern", "format"} {
		if _, ok := m[k]; ok {
			return &node{kind: "string", m: m}
		}
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} {
		if _, ok := m[k]; ok {
			return &node{kind: "number", m: m}
		}
	}
	return &node{kind: "empty", m: m}
}

func (c *differ) schema(path string, original, updated any) {
	c.node(path, classify(original), classify(updated))
}

func (c *differ) node(path string, o, u *node) {
	if o.kind == "false" {
		return // the original matched nothing: anything reads it
	}
	switch u.kind {
	case "string", "number", "boolean":
		// An enum with a type is allOf[typed, enum]: compare with its typed part.
		if o.kind == "combined" && o.criteria == "allOf" {
			var same []*node
			for _, s := range o.subs {
				if s.kind == u.kind {
					same = append(same, s)
				}
			}
			if len(same) == 1 {
				o = same[0]
			}
		}
		if o.kind != u.kind {
			c.add(path, "SUBSCHEMA_TYPE_CHANGED", false)
			return
		}
		switch u.kind {
		case "string":
			c.str(path, o.m, u.m)
		case "number":
			c.number(path, o, u)
		}
	case "object", "array", "null", "combined":
		if o.kind != u.kind {
			c.add(path, "SUBSCHEMA_TYPE_CHANGED", false)
			return
		}
		switch u.kind {
		case "object":
			c.object(path, o.m, u.m)
		case "array":
			c.array(path, o.m, u.m)
		case "combined":
			c.combined(path, o, u)
		}
	case "const":
		ov, ok := o.m["const"]
		if o.kind == "enum" {
			if vals, _ := o.m["enum"].([]any); len(vals) == 1 {
				ov, ok = vals[0], true
			}
		} else if o.kind != "const" {
			ok = false
		}
		if !ok {
			c.add(path, "SUBSCHEMA_TYPE_CHANGED", false)
			return
		}
		if canon(ov) != canon(u.m["const"]) {
			c.add(path+"/const", "CONST_TYPE_VALUE_CHANGED", false)
		}
	case "enum":
		var ov []any
		switch o.kind {
		case "const":
			ov = []any{o.m["const"]}
		case "enum":
			ov, _ = o.m["enum"].([]any)
		default:
			c.add(path, "SUBSCHEMA_TYPE_CHANGED", false)
			return
		}
		uv, _ := u.m["enum"].([]any)
		c.set(path+"/enum", canonSet(ov), canonSet(uv), "ENUM_TYPE_VALUES_MEMBER_ADDED", true, "ENUM_TYPE_VALUES_MEMBER_REMOVED", false)
	case "empty":
		// Updated accepts anything: compatible.
	case "false":
		c.add(path, "SUBSCHEMA_TYPE_CHANGED", false)
	}
}

// set compares two sets member by member.
func (c *differ) set(path string, o, u []string, added string, addedOK bool, removed string, removedOK bool) {
	for _, x := range o {
		if !slices.Contains(u, x) {
			c.addMember(path, unquote(x), removed, removedOK)
		}
	}
	for _, x := range u {
		if !slices.Contains(o, x) {
			c.addMember(path, unquote(x), added, addedOK)
		}
	}
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func canonSet(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, canon(v))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func unquote(s string) string {
	var str string
	if json.Unmarshal([]byte(s), &str) == nil {
		return str
	}
	return s
}

func stringSet(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, strconvQuote(s))
		}
	}
	sort.Strings(out)
	return out
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// permits returns whether m allows additional properties and their schema
// (nil: any).
func permits(m map[string]any) (bool, any) {
	switch v := m["additionalProperties"].(type) {
	case nil:
		return true, nil
	case bool:
		return v, nil
	default:
		return true, v
	}
}

func (c *differ) object(path string, o, u map[string]any) {
	c.set(path+"/required", stringSet(o["required"]), stringSet(u["required"]),
		"OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED", false, "OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_REMOVED", true)
	c.integer(path+"/minProperties", o["minProperties"], u["minProperties"], "OBJECT_TYPE_MIN_PROPERTIES", false, true, false, true)
	c.integer(path+"/maxProperties", o["maxProperties"], u["maxProperties"], "OBJECT_TYPE_MAX_PROPERTIES", false, true, true, false)

	oPermits, oAdd := permits(o)
	uPermits, uAdd := permits(u)
	switch {
	case oPermits && !uPermits:
		c.add(path+"/additionalProperties", "OBJECT_TYPE_ADDITIONAL_PROPERTIES_TRUE_TO_FALSE", false)
	case !oPermits && uPermits:
		c.add(path+"/additionalProperties", "OBJECT_TYPE_ADDITIONAL_PROPERTIES_FALSE_TO_TRUE", true)
	case oPermits && uPermits:
		c.schemaOrTrue(path+"/additionalProperties", oAdd, uAdd)
	}

	op, _ := o["properties"].(map[string]any)
	up, _ := u["properties"].(map[string]any)
	var added, removed []any
	var addedNames, removedNames []string
	for _, name := range sortedKeys(op, up) {
		os, inO := op[name]
		us, inU := up[name]
		switch {
		case inO && inU:
			sub := path + "/properties/" + name
			on, un := classify(os), classify(us)
			if on.kind == "string" && un.kind == "combined" {
				on = &node{kind: "combined", criteria: "anyOf", m: map[string]any{}, subs: []*node{on}}
			}
			c.node(sub, on, un)
		case inU:
			added, addedNames = append(added, us), append(addedNames, name)
		default:
			removed, removedNames = append(removed, os), append(removedNames, name)
		}
	}
	// One difference per property (Apicurio reports one for all of them;
	// the verdict is the same), so the message names each field.
	where := path + "/properties"
	if len(added) > 0 {
		var rule string
		var ok bool
		switch {
		case !oPermits:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_EXTENDED", true
		case oAdd == nil:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED", false
		case !uPermits && allCompatible(added, oAdd, false):
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED", false
		case uPermits && allCompatible(added, oAdd, true):
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_EXTENDED", true
		default:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_CHANGED", false
		}
		for _, n := range addedNames {
			c.addMember(where, n, rule, ok)
		}
	}
	if len(removed) > 0 {
		var rule string
		var ok bool
		switch {
		case !uPermits:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED", false
		case uAdd == nil:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_EXTENDED", true
		case allCompatible(removed, uAdd, true):
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED_COMPATIBLE_WITH_ADDITIONAL_PROPERTIES", true
		default:
			rule, ok = "OBJECT_TYPE_PROPERTY_SCHEMAS_CHANGED", false
		}
		for _, n := range removedNames {
			c.addMember(where, n, rule, ok)
		}
	}
	for _, k := range []string{"patternProperties", "dependencies", "propertyNames", "if", "then", "else", "not", "$ref"} {
		c.unsupported(path+"/"+k, o[k], u[k])
	}
}

// allCompatible: backward, each item reads as additional; forward, additional reads as each item.
func allCompatible(items []any, additional any, backward bool) bool {
	for _, it := range items {
		if backward && !compatible(it, additional) || !backward && !compatible(additional, it) {
			return false
		}
	}
	return true
}

func (c *differ) schemaOrTrue(path string, o, u any) {
	switch {
	case o != nil && u == nil:
		c.add(path, "OBJECT_TYPE_ADDITIONAL_PROPERTIES_EXTENDED", true)
	case o == nil && u != nil:
		c.add(path, "OBJECT_TYPE_ADDITIONAL_PROPERTIES_NARROWED", false)
	case o != nil && u != nil:
		back, fwd := compatible(o, u), compatible(u, o)
		switch {
		case back && fwd:
		case back:
			c.add(path, "OBJECT_TYPE_ADDITIONAL_PROPERTIES_EXTENDED", true)
		case fwd:
			c.add(path, "OBJECT_TYPE_ADDITIONAL_PROPERTIES_NARROWED", false)
		default:
			c.add(path, "OBJECT_TYPE_ADDITIONAL_PROPERTIES_SCHEMA_CHANGED", false)
		}
	}
}

func (c *differ) unsupported(path string, o, u any) {
	if (o != nil || u != nil) && canon(o) != canon(u) {
		c.add(path, "UNSUPPORTED_KEYWORD_CHANGED", false)
	}
}

func sortedKeys(ms ...map[string]any) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return slices.Compact(keys)
}

// integer compares an optional integer keyword: added, removed, increased,
// decreased, with whether each is compatible.
func (c *differ) integer(path string, o, u any, prefix string, addedOK, removedOK, incOK, decOK bool) {
	c.numberKeyword(path, o, u, prefix+"_ADDED", addedOK, prefix+"_REMOVED", removedOK, prefix+"_INCREASED", incOK, prefix+"_DECREASED", decOK)
}

func (c *differ) numberKeyword(path string, o, u any, added string, addedOK bool, removed string, removedOK bool, inc string, incOK bool, dec string, decOK bool) bool {
	ov, oOK := num(o)
	uv, uOK := num(u)
	switch {
	case !oOK && uOK:
		c.add(path, added, addedOK)
	case oOK && !uOK:
		c.add(path, removed, removedOK)
	case oOK && uOK:
		switch ov.Cmp(uv) {
		case -1:
			c.add(path, inc, incOK)
		case 1:
			c.add(path, dec, decOK)
		default:
			return true
		}
	}
	return false
}

func num(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(n.String())
	return r, ok
}

func (c *differ) optionalString(path string, o, u any, defaultValue, prefix string) {
	os, _ := o.(string)
	us, _ := u.(string)
	if os == defaultValue {
		os = ""
	}
	if us == defaultValue {
		us = ""
	}
	switch {
	case os == "" && us != "":
		c.add(path, prefix+"_ADDED", false)
	case os != "" && us == "":
		c.add(path, prefix+"_REMOVED", true)
	case os != us:
		c.add(path, prefix+"_CHANGED", false)
	}
}

func (c *differ) str(path string, o, u map[string]any) {
	c.optionalString(path+"/contentEncoding", o["contentEncoding"], u["contentEncoding"], "", "STRING_TYPE_CONTENT_ENCODING")
	c.optionalString(path+"/contentMediaType", o["contentMediaType"], u["contentMediaType"], "", "STRING_TYPE_CONTENT_MEDIA_TYPE")
	c.integer(path+"/minLength", o["minLength"], u["minLength"], "STRING_TYPE_MIN_LENGTH", false, true, false, true)
	c.integer(path+"/maxLength", o["maxLength"], u["maxLength"], "STRING_TYPE_MAX_LENGTH", false, true, true, false)
	c.optionalString(path+"/pattern", o["pattern"], u["pattern"], "", "STRING_TYPE_PATTERN")
	c.optionalString(path+"/format", o["format"], u["format"], "", "STRING_TYPE_FORMAT")
}

// limit returns a draft-07 bound: the exclusive one if present, else the
// inclusive one, and whether it is exclusive.
func limit(m map[string]any, inclusive, exclusive string) (any, bool) {
	if v, ok := m[exclusive].(json.Number); ok {
		return v, true
	}
	return m[inclusive], false
}

func (c *differ) number(path string, o, u *node) {
	oInt := o.integer
	if mo, ok := num(o.m["multipleOf"]); ok && mo.Cmp(big.NewRat(1, 1)) == 0 {
		oInt = true
	}
	switch {
	case !oInt && u.integer:
		c.add(path+"/type", "NUMBER_TYPE_INTEGER_REQUIRED_FALSE_TO_TRUE", false)
	case oInt && !u.integer:
		c.add(path+"/type", "NUMBER_TYPE_INTEGER_REQUIRED_TRUE_TO_FALSE", true)
	}
	omin, omx := limit(o.m, "minimum", "exclusiveMinimum")
	umin, umx := limit(u.m, "minimum", "exclusiveMinimum")
	if c.numberKeyword(path+"/minimum", omin, umin, "NUMBER_TYPE_MINIMUM_ADDED", false, "NUMBER_TYPE_MINIMUM_REMOVED", true,
		"NUMBER_TYPE_MINIMUM_INCREASED", false, "NUMBER_TYPE_MINIMUM_DECREASED", true) {
		c.exclusive(path+"/exclusiveMinimum", omx, umx, "NUMBER_TYPE_IS_MINIMUM_EXCLUSIVE")
	}
	omax, oxx := limit(o.m, "maximum", "exclusiveMaximum")
	umax, uxx := limit(u.m, "maximum", "exclusiveMaximum")
	if c.numberKeyword(path+"/maximum", omax, umax, "NUMBER_TYPE_MAXIMUM_ADDED", false, "NUMBER_TYPE_MAXIMUM_REMOVED", true,
		"NUMBER_TYPE_MAXIMUM_INCREASED", true, "NUMBER_TYPE_MAXIMUM_DECREASED", false) {
		c.exclusive(path+"/exclusiveMaximum", oxx, uxx, "NUMBER_TYPE_IS_MAXIMUM_EXCLUSIVE")
	}
	om, oOK := num(o.m["multipleOf"])
	um, uOK := num(u.m["multipleOf"])
	switch {
	case !oOK && uOK:
		c.add(path+"/multipleOf", "NUMBER_TYPE_MULTIPLE_OF_ADDED", false)
	case oOK && !uOK:
		c.add(path+"/multipleOf", "NUMBER_TYPE_MULTIPLE_OF_REMOVED", true)
	case oOK && uOK:
		q := new(big.Rat).Quo(om, um)
		if q.IsInt() {
			c.add(path+"/multipleOf", "NUMBER_TYPE_MULTIPLE_OF_UPDATED_IS_DIVISIBLE", true)
		} else {
			c.add(path+"/multipleOf", "NUMBER_TYPE_MULTIPLE_OF_UPDATED_IS_NOT_DIVISIBLE", false)
		}
	}
}

func (c *differ) exclusive(path string, o, u bool, prefix string) {
	switch {
	case !o && u:
		c.add(path, prefix+"_FALSE_TO_TRUE", false)
	case o && !u:
		c.add(path, prefix+"_TRUE_TO_FALSE", true)
	}
}

func (c *differ) array(path string, o, u map[string]any) {
	c.integer(path+"/minItems", o["minItems"], u["minItems"], "ARRAY_TYPE_MIN_ITEMS", false, true, false, true)
	c.integer(path+"/maxItems", o["maxItems"], u["maxItems"], "ARRAY_TYPE_MAX_ITEMS", false, true, true, false)
	ou, _ := o["uniqueItems"].(bool)
	uu, _ := u["uniqueItems"].(bool)
	switch {
	case !ou && uu:
		c.add(path+"/uniqueItems", "ARRAY_TYPE_UNIQUE_ITEMS_FALSE_TO_TRUE", false)
	case ou && !uu:
		c.add(path+"/uniqueItems", "ARRAY_TYPE_UNIQUE_ITEMS_TRUE_TO_FALSE", true)
	}
	oi, oList := o["items"].([]any)
	ui, uList := u["items"].([]any)
	if oList || uList {
		if canon(oi) != canon(ui) {
			c.add(path+"/items", "UNSUPPORTED_KEYWORD_CHANGED", false)
		}
	} else {
		switch oItems, uItems := o["items"], u["items"]; {
		case oItems == nil && uItems != nil:
			c.add(path+"/items", "ARRAY_TYPE_ALL_ITEM_SCHEMA_ADDED", false)
		case oItems != nil && uItems == nil:
			c.add(path+"/items", "ARRAY_TYPE_ALL_ITEM_SCHEMA_REMOVED", true)
		case oItems != nil:
			c.schema(path+"/items", oItems, uItems)
		}
	}
	for _, k := range []string{"contains", "additionalItems"} {
		c.unsupported(path+"/"+k, o[k], u[k])
	}
}

// combined compares anyOf/allOf/oneOf (and type lists, which are anyOf):
// every original alternative needs a distinct compatible updated one.
func (c *differ) combined(path string, o, u *node) {
	if o.criteria != u.criteria {
		switch {
		case u.criteria == "anyOf":
			c.add(path, "COMBINED_TYPE_CRITERION_EXTENDED", true)
		case o.criteria == "anyOf":
			c.add(path, "COMBINED_TYPE_CRITERION_NARROWED", false)
		default:
			c.add(path, "COMBINED_TYPE_CRITERION_CHANGED", false)
		}
		return
	}
	size := map[string][2]string{"anyOf": {"COMBINED_TYPE_ANY_OF_SIZE_INCREASED", "COMBINED_TYPE_ANY_OF_SIZE_DECREASED"},
		"oneOf": {"COMBINED_TYPE_ONE_OF_SIZE_INCREASED", "COMBINED_TYPE_ONE_OF_SIZE_DECREASED"},
		"allOf": {"COMBINED_TYPE_ALL_OF_SIZE_INCREASED", "COMBINED_TYPE_ALL_OF_SIZE_DECREASED"}}[o.criteria]
	allOf := o.criteria == "allOf"
	switch {
	case len(o.subs) < len(u.subs):
		c.add(path, size[0], !allOf)
	case len(o.subs) > len(u.subs):
		c.add(path, size[1], allOf)
		return
	}
	// Match each original alternative with a compatible updated one, the
	// most constrained first.
	cands := make([][]int, len(o.subs))
	found := make([][][]diff, len(o.subs)) // the incompatible differences of each pair
	for i, os := range o.subs {
		found[i] = make([][]diff, len(u.subs))
		for j, us := range u.subs {
			d := &differ{}
			d.node(path, os, us)
			found[i][j] = incompatibleOf(d.diffs)
			if len(found[i][j]) == 0 {
				cands[i] = append(cands[i], j)
			}
		}
	}
	used := map[int]bool{}
	done := make([]bool, len(o.subs))
	for range o.subs {
		best := -1
		for i := range o.subs {
			if done[i] {
				continue
			}
			if best < 0 || free(cands[i], used) < free(cands[best], used) {
				best = i
			}
		}
		done[best] = true
		picked := false
		for _, j := range cands[best] {
			if !used[j] {
				used[j], picked = true, true
				break
			}
		}
		if picked {
			continue
		}
		// No counterpart. Say why against the alternative of the same
		// kind (a type list's array against the new array), if there is
		// one; the verdict is the same as Apicurio's, the reason precise.
		var why []diff
		for j, us := range u.subs {
			if us.kind == o.subs[best].kind && len(found[best][j]) > 0 {
				why = found[best][j]
				break
			}
		}
		if len(why) == 0 {
			c.add(fmt.Sprintf("%s/%s/%d", path, o.criteria, best), "COMBINED_TYPE_SUBSCHEMA_NOT_COMPATIBLE", false)
			continue
		}
		c.diffs = append(c.diffs, why...)
	}
}

func free(cands []int, used map[int]bool) int {
	n := 0
	for _, j := range cands {
		if !used[j] {
			n++
		}
	}
	return n
}

func incompatibleOf(ds []diff) []diff {
	var out []diff
	for _, d := range ds {
		if !d.compatible {
			out = append(out, d)
		}
	}
	return out
}
