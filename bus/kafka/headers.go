package kafka

import (
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventmart/eventmart/bus"
)

// bus.Header and kgo.RecordHeader have the same fields (Key string, Value
// []byte) in the same order, so a slice of one can be viewed as a slice of
// the other without copying (rule 1 of unsafe.Pointer). Copying instead
// costs an allocation of 40 bytes per header, which with the six envelope
// headers was about a tenth of the CPU the client spends per message, and
// the consumer benchmark's gap to franz-go used directly.
//
// A view shares the header array, as Key and Value already share their
// bytes: a handler that changes a message's headers changes them in the
// record it retries from. TestHeaderLayout checks the equivalence field by
// field; the arrays below stop the build if the sizes ever differ.
var (
	_ [unsafe.Sizeof(bus.Header{}) - unsafe.Sizeof(kgo.RecordHeader{})]struct{}
	_ [unsafe.Sizeof(kgo.RecordHeader{}) - unsafe.Sizeof(bus.Header{})]struct{}
)

// busHeaders views franz-go headers as bus headers.
func busHeaders(h []kgo.RecordHeader) []bus.Header {
	return unsafe.Slice((*bus.Header)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}

// kgoHeaders views bus headers as franz-go headers.
func kgoHeaders(h []bus.Header) []kgo.RecordHeader {
	return unsafe.Slice((*kgo.RecordHeader)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}
