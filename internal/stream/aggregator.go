package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Aggregator folds the records of one window and key into a value V.
//
// Results do not depend on how partitions interleave only if Add is
// order-insensitive across records of different partitions (counts, sums,
// min, max, sets); records of one partition are always added in their
// order. Merge joins two session windows bridged by a record and is only
// called for session windows. Encode and Decode persist V in state entries.
type Aggregator[V any] interface {
	Init() V
	Add(acc V, r *Record) V
	Merge(a, b V) V
	Encode(v V) ([]byte, error)
	Decode(b []byte) (V, error)
}

// CountSum is a count of records and a sum of one integer per record.
type CountSum struct {
	Count int64
	Sum   int64
}

// CountSumAggregator counts records and sums Value(record) (nil Value: sum stays 0).
type CountSumAggregator struct {
	Value func(*Record) int64
}

// Init is the empty count.
func (CountSumAggregator) Init() CountSum { return CountSum{} }

// Add counts r and adds its value.
func (a CountSumAggregator) Add(acc CountSum, r *Record) CountSum {
	acc.Count++
	if a.Value != nil {
		acc.Sum += a.Value(r)
	}
	return acc
}

// Merge adds both.
func (CountSumAggregator) Merge(x, y CountSum) CountSum {
	return CountSum{Count: x.Count + y.Count, Sum: x.Sum + y.Sum}
}

// Encode is 16 bytes, big-endian count then sum.
func (CountSumAggregator) Encode(v CountSum) ([]byte, error) {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(v.Count))
	binary.BigEndian.PutUint64(b[8:], uint64(v.Sum))
	return b, nil
}

var errBadCountSum = errors.New("count-sum state is not 16 bytes")

// Decode reverses Encode.
func (CountSumAggregator) Decode(b []byte) (CountSum, error) {
	if len(b) != 16 {
		return CountSum{}, fmt.Errorf("%w: %d bytes", errBadCountSum, len(b))
	}
	return CountSum{Count: int64(binary.BigEndian.Uint64(b)), Sum: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}
