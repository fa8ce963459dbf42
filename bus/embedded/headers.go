package embedded

import (
	"encoding/binary"
	"errors"

	"github.com/eventmart/eventmart/bus"
)

// Headers are stored as a count followed by length-prefixed keys and
// values, all as uvarints: compact, and cheap next to JSON.

func encodeHeaders(hs []bus.Header) []byte {
	if len(hs) == 0 {
		return nil
	}
	n := binary.MaxVarintLen64
	for _, h := range hs {
		n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	return b
}

var errCorruptHeaders = errors.New("corrupt headers")

// decodeHeaders decodes what encodeHeaders wrote; the values share b's
// memory. names interns the header names across calls (nil: no interning).
func decodeHeaders(b []byte, names map[string]string) ([]bus.Header, error) {
	if len(b) == 0 {
		return nil, nil
	}
	count, b, err := uvarint(b)
	if err != nil || count > uint64(len(b)) {
		return nil, errCorruptHeaders
	}
	hs := make([]bus.Header, count)
	for i := range hs {
		var k, v []byte
		if k, b, err = chunk(b); err != nil {
			return nil, err
		}
		if v, b, err = chunk(b); err != nil {
			return nil, err
		}
		name, ok := names[string(k)]
		if !ok {
			name = string(k)
			if names != nil {
				names[name] = name
			}
		}
		hs[i] = bus.Header{Key: name, Value: v}
	}
	return hs, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errCorruptHeaders
	}
	return v, b[n:], nil
}

func chunk(b []byte) ([]byte, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil || n > uint64(len(b)) {
		return nil, nil, errCorruptHeaders
	}
	return b[:n:n], b[n:], nil
}
