package kafka

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// TestHeaderLayout guards busHeaders and kgoHeaders: the two header types
// must keep the same fields, of the same types, at the same offsets.
func TestHeaderLayout(t *testing.T) {
	b, k := reflect.TypeFor[bus.Header](), reflect.TypeFor[kgo.RecordHeader]()
	if b.Size() != k.Size() || b.NumField() != k.NumField() {
		t.Fatalf("bus.Header is %d bytes with %d fields, kgo.RecordHeader %d bytes with %d", b.Size(), b.NumField(), k.Size(), k.NumField())
	}
	for i := range b.NumField() {
		bf, kf := b.Field(i), k.Field(i)
		if bf.Name != kf.Name || bf.Type != kf.Type || bf.Offset != kf.Offset {
			t.Errorf("field %d: bus.Header has %s %s at %d, kgo.RecordHeader %s %s at %d", i, bf.Name, bf.Type, bf.Offset, kf.Name, kf.Type, kf.Offset)
		}
	}
}

func TestHeaderViews(t *testing.T) {
	if busHeaders(nil) != nil || kgoHeaders(nil) != nil {
		t.Error("a view of no headers is not nil")
	}
	in := []bus.Header{{Key: "eventType", Value: []byte("OrderCreated")}, {Key: "empty"}}
	out := busHeaders(kgoHeaders(in))
	if !reflect.DeepEqual(in, out) || cap(out) != len(in) {
		t.Errorf("round trip = %+v (cap %d), want %+v", out, cap(out), in)
	}
}
