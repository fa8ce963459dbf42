package analytics

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/stream"
)

// opShipTime is the operator joining OrderCreated to OrderShipped;
// cShipDelay is the counter of its histogram (|bucket, see shipDelayName).
const (
	opShipTime = "shiptime"
	cShipDelay = "shipDelayMs"
)

// ShipHorizon bounds how long an order's OrderCreated time is kept waiting
// for its OrderShipped or OrderCancelled: an order shipped later than this
// after it was placed is not counted in the order → shipped times, and its
// state is dropped once the watermark passes creation + ShipHorizon. The
// state is one entry (order id → time) per open order.
const ShipHorizon = 7 * 24 * time.Hour

// shipSweepEvery is how much event time passes between the scans that
// drop orders older than ShipHorizon (a scan walks every open order).
const shipSweepEvery = time.Minute

// shipTimes keeps each open order's OrderCreated event time, by order id
// (the orders topic's key, so an order's events arrive in one partition,
// in order). On OrderShipped it adds the order's delay to the record's
// contributions, so the minute and hour windows (which come after it in
// the engine) count it in the window of the shipment; on OrderCancelled it
// forgets the order. It emits no results itself and never drops a record
// as late: the windows decide lateness of the shipment.
type shipTimes struct {
	created   map[string]int64 // order id → OrderCreated time (Unix ns)
	changed   map[string]struct{}
	nextSweep int64
}

func newShipTimes() *shipTimes {
	return &shipTimes{created: map[string]int64{}, changed: map[string]struct{}{}, nextSweep: stream.NoTime}
}

func (s *shipTimes) Name() string { return opShipTime }

func (s *shipTimes) Offer(r *stream.Record, t, _ int64) bool {
	switch r.EventType {
	case "OrderCreated":
		s.created[r.Key] = t
		s.changed[r.Key] = struct{}{}
	case "OrderShipped":
		tc, ok := s.created[r.Key]
		if !ok {
			return false
		}
		delete(s.created, r.Key)
		s.changed[r.Key] = struct{}{}
		// Checked here, not left to the sweep, so the figure does not
		// depend on when the sweep ran.
		if d := t - tc; d >= 0 && d <= int64(ShipHorizon) {
			cs, _ := r.Decoded.([]contribution)
			r.Decoded = append(cs, contribution{shipDelayName(time.Duration(d)), 1})
		}
	case "OrderCancelled":
		if _, ok := s.created[r.Key]; ok {
			delete(s.created, r.Key)
			s.changed[r.Key] = struct{}{}
		}
	}
	return false
}

func (s *shipTimes) Advance(w int64, _ func(stream.Result)) {
	if w < s.nextSweep {
		return
	}
	s.nextSweep = w + int64(shipSweepEvery)
	for id, tc := range s.created {
		if tc < w-int64(ShipHorizon) {
			delete(s.created, id)
			s.changed[id] = struct{}{}
		}
	}
}

func (s *shipTimes) Changes(dst []stream.StateEntry) []stream.StateEntry {
	if len(s.changed) == 0 {
		return dst
	}
	ids := make([]string, 0, len(s.changed))
	for id := range s.changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := stream.StateEntry{Operator: opShipTime, Key: id}
		if tc, ok := s.created[id]; ok {
			e.Value = binary.BigEndian.AppendUint64(nil, uint64(tc))
		}
		dst = append(dst, e)
	}
	clear(s.changed)
	return dst
}

func (s *shipTimes) Snapshot(dst []stream.StateEntry) []stream.StateEntry {
	for id, tc := range s.created {
		dst = append(dst, stream.StateEntry{Operator: opShipTime, Key: id, Value: binary.BigEndian.AppendUint64(nil, uint64(tc))})
	}
	return dst
}

func (s *shipTimes) Restore(e stream.StateEntry) error {
	if len(e.Value) != 8 {
		return fmt.Errorf("analytics: order %q created time: %w: %d bytes", e.Key, stream.ErrBadState, len(e.Value))
	}
	s.created[e.Key] = int64(binary.BigEndian.Uint64(e.Value))
	return nil
}

// The order → shipped times of a window are a histogram in its Counters
// ("shipDelayMs|<bucket's upper bound in ms>"): below 16 ms one bucket per
// millisecond, above it 8 buckets per power of two, so a quantile read
// from it (the bucket's upper bound) is at most 12.5 % above the exact
// one, and a window holds at most ~200 buckets whatever its orders. Sums
// of histograms are histograms: the hour windows and the API's totals add
// them up like any counter.

// shipDelayName is the counter of d's bucket.
func shipDelayName(d time.Duration) string {
	return cShipDelay + "|" + strconv.FormatInt(shipBucket(d.Milliseconds()), 10)
}

// shipBucket is the upper bound (ms, inclusive) of ms's bucket.
func shipBucket(ms int64) int64 {
	if ms < 16 {
		return max(ms, 0)
	}
	shift := bits.Len64(uint64(ms)) - 4 // keep the 4 leading bits
	return (ms>>shift+1)<<shift - 1
}

// ShipTimes are a window's order → shipped times: how many orders shipped
// in the window (and were placed at most ShipHorizon before), and the
// median and 95th percentile of their time from OrderCreated to
// OrderShipped (event times), in milliseconds, each the upper bound of a
// histogram bucket (at most 12.5 % above the exact value; 0 when none).
type ShipTimes struct {
	Count int64 `json:"count"`
	P50Ms int64 `json:"p50Ms"`
	P95Ms int64 `json:"p95Ms"`
}

// shipTimesOf reads the quantiles from a window's histogram buckets
// (bucket upper bound in ms → count).
func shipTimesOf(buckets map[int64]int64) ShipTimes {
	var st ShipTimes
	bounds := make([]int64, 0, len(buckets))
	for b, n := range buckets {
		bounds = append(bounds, b)
		st.Count += n
	}
	if st.Count == 0 {
		return ShipTimes{}
	}
	slices.Sort(bounds)
	q := func(p float64) int64 {
		rank := int64(p*float64(st.Count) + 0.999999) // the ceil(p·n)-th smallest
		var seen int64
		for _, b := range bounds {
			seen += buckets[b]
			if seen >= rank {
				return b
			}
		}
		return bounds[len(bounds)-1]
	}
	st.P50Ms, st.P95Ms = q(0.5), q(0.95)
	return st
}

// shipBucketOf parses a histogram counter's label.
func shipBucketOf(label string) (int64, bool) {
	b, err := strconv.ParseInt(strings.TrimSpace(label), 10, 64)
	return b, err == nil
}
