package cep

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// condition is a compiled Condition.
type condition struct {
	path path
	op   string
	num  float64 // when isNum
	str  string  // when isStr
	b    bool    // when isBool
	kind byte    // 'n' number, 's' string, 'b' bool
}

type conditionError struct{ field, problem string }

func (e conditionError) Error() string { return e.field + ": " + e.problem }

func compileCondition(c Condition) (condition, error) {
	p, _ := parsePath(c.Path)
	cc := condition{path: p, op: c.Op}
	switch v := c.Value.(type) {
	case nil:
		return cc, conditionError{"value", "missing (want a number, string or bool)"}
	case string:
		cc.kind, cc.str = 's', v
	case bool:
		cc.kind, cc.b = 'b', v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return cc, conditionError{"value", fmt.Sprintf("%q is not a number", v)}
		}
		cc.kind, cc.num = 'n', f
	case float64:
		cc.kind, cc.num = 'n', v
	case int:
		cc.kind, cc.num = 'n', float64(v)
	case int64:
		cc.kind, cc.num = 'n', float64(v)
	default:
		return cc, conditionError{"value", fmt.Sprintf("a %T; want a number, string or bool", v)}
	}
	switch c.Op {
	case "eq", "ne":
	case "lt", "le", "gt", "ge":
		if cc.kind == 'b' {
			return cc, conditionError{"value", fmt.Sprintf("op %q compares numbers or strings, not a bool", c.Op)}
		}
	case "":
		return cc, conditionError{"op", "missing (want eq, ne, lt, le, gt or ge)"}
	default:
		return cc, conditionError{"op", fmt.Sprintf("unknown op %q (want eq, ne, lt, le, gt or ge)", c.Op)}
	}
	return cc, nil
}

// holds evaluates the condition on a decoded document.
func (c condition) holds(doc any) bool {
	v, ok := c.path.get(doc)
	if !ok {
		return c.op == "ne"
	}
	var cmp int
	switch c.kind {
	case 'n':
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(string(x), 64); err != nil {
				return c.op == "ne"
			}
		default:
			return c.op == "ne"
		}
		cmp = compare(f, c.num)
	case 's':
		s, isStr := v.(string)
		if !isStr {
			return c.op == "ne"
		}
		cmp = compare(s, c.str)
	case 'b':
		b, isBool := v.(bool)
		if !isBool {
			return c.op == "ne"
		}
		if b == c.b {
			cmp = 0
		} else {
			cmp = 1
		}
	}
	switch c.op {
	case "eq":
		return cmp == 0
	case "ne":
		return cmp != 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	case "gt":
		return cmp > 0
	default: // "ge"
		return cmp >= 0
	}
}

func compare[T float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
