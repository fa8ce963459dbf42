package cep

import (
	"encoding/json"
	"strconv"
	"strings"
)

// path is a compiled dotted path into a decoded JSON document:
// "customer.userId", "lines.0.productId" (a number indexes an array).
type path []string

func parsePath(s string) (path, bool) {
	if s == "" {
		return nil, false
	}
	p := strings.Split(s, ".")
	for _, seg := range p {
		if seg == "" {
			return nil, false
		}
	}
	return p, true
}

// get returns the value at p in doc (decoded with json.Decoder.UseNumber).
func (p path) get(doc any) (any, bool) {
	cur := doc
	for _, seg := range p {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// keyString renders a scalar as a match key; objects, arrays and null are no key.
func keyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
