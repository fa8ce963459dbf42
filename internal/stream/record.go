package stream

import (
	"encoding/json"
	"fmt"
	"time"
)

// Partition names one source partition: the engine keeps one stream time
// and one last offset per partition.
type Partition struct {
	Topic  string
	Number int32
}

// String is "topic/number", the form used in state entries.
func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.Number) }

// Record is one input event as the engine sees it. The caller adapts its
// envelopes to it; the engine never decodes Payload itself (operators may).
type Record struct {
	Partition Partition
	// Offset grows within a partition; a record at or below the last
	// offset processed on its partition is a replay and is skipped.
	Offset    int64
	Key       string
	Time      time.Time // event time
	EventID   string
	EventType string
	Payload   json.RawMessage
	// Decoded is the caller's decoded form of Payload, if it made one, for
	// its operators to share (decoding once per record, not per operator);
	// the engine ignores it.
	Decoded any
}
