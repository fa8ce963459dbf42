package stream

import "time"

// Operator is one stateful computation the engine feeds: a windowed
// aggregation (NewAggregate) or a set of pattern rules (package cep).
// Times are Unix nanoseconds.
//
// The engine calls Offer for each record of a batch, in each partition's
// order, then Advance once with the new watermark. An operator must decide
// lateness only from the record's partition's stream time and emit only
// what no future accepted record can change; that is what makes results
// independent of batching and of how partitions interleave.
type Operator interface {
	// Name identifies the operator in results and state; unique per engine.
	Name() string
	// Offer hands over one record at event time t. streamTime is the stream
	// time of the record's partition before it (NoTime if none yet). It
	// returns whether the record was late (dropped, for any of its windows).
	Offer(r *Record, t, streamTime int64) (late bool)
	// Advance tells the operator the watermark rose to w; it emits final
	// results through emit, in non-decreasing At order.
	Advance(w int64, emit func(Result))
	// Changes appends the state entries changed since the last call.
	Changes(dst []StateEntry) []StateEntry
	// Snapshot appends all of the operator's state.
	Snapshot(dst []StateEntry) []StateEntry
	// Restore loads one entry of a snapshot into a fresh operator.
	Restore(e StateEntry) error
}

// NoTime is the stream time of a partition that has seen no record.
const NoTime int64 = -1 << 63

// Result is a final output: a closed window's aggregate (Value is the
// Aggregator's V) or a pattern detection (Value is a cep.Detection).
type Result struct {
	Operator string
	Key      string
	Start    time.Time // window start; a detection's first evidence time
	End      time.Time // window end (exclusive; a session's last record); a detection's time
	// At is the watermark from which the result was final: a fixed window's
	// end+grace, a session's end+gap+grace, a detection's time. Results are
	// delivered ordered by (At, Operator), then in the operator's order.
	At    time.Time
	Value any
}
