package registry

import (
	"strings"
	"testing"
)

// The violations name the payload field, the rule and the direction.
func TestViolationsNameFieldAndRule(t *testing.T) {
	old := `{"type":"object","properties":{"a":{"type":"string"},"c":{"type":"object","properties":{"x":{"type":"string","enum":["p","q"]},"gone":{"type":"string"}},"required":["x"],"additionalProperties":false},
		"l":{"type":["array","null"],"items":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"],"additionalProperties":false}}},"required":["a"],"additionalProperties":false}`
	upd := `{"type":"object","properties":{"a":{"type":"integer"},"c":{"type":"object","properties":{"x":{"type":"string","enum":["p"]},"y":{"type":"string"}},"required":["x","y"],"additionalProperties":false},
		"l":{"type":["array","null"],"items":{"type":"object","properties":{"n":{"type":"integer"},"m":{"type":"string"}},"required":["n","m"],"additionalProperties":false}}},"required":["a"],"additionalProperties":false}`
	v, err := Check(Backward, [][]byte{[]byte(old)}, []byte(upd))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range v {
		got[x.Field+" "+x.Rule] = x.String()
		if x.Direction != "BACKWARD" || x.Version != 1 {
			t.Errorf("%+v", x)
		}
	}
	for _, want := range []string{
		"a SUBSCHEMA_TYPE_CHANGED",
		"c.y OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED",
		"c.gone OBJECT_TYPE_PROPERTY_SCHEMAS_NARROWED",
		"l[].m OBJECT_TYPE_REQUIRED_PROPERTIES_MEMBER_ADDED",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("no violation %q among %v", want, got)
		}
	}
	if len(v) != 5 {
		t.Errorf("%d violations: %v", len(v), got)
	}
	var enum string
	for k, s := range got {
		if strings.HasPrefix(k, "c.x ") {
			enum = s
		}
	}
	if !strings.Contains(enum, `an enum value was removed ("q")`) || !strings.Contains(enum, "ENUM_TYPE_VALUES_MEMBER_REMOVED") {
		t.Errorf("enum violation %q", enum)
	}
	// The same change read the other way round: what FORWARD forbids.
	f, _ := Check(Forward, [][]byte{[]byte(old)}, []byte(upd))
	for _, x := range f {
		if x.Direction != "FORWARD" || !strings.Contains(x.String(), "version 1 cannot read records written with the new schema") {
			t.Errorf("forward %s", x)
		}
	}
	if n, _ := Check(None, [][]byte{[]byte(old)}, []byte(upd)); len(n) != 0 {
		t.Errorf("NONE found %v", n)
	}
}
