package stream

import (
	"errors"
	"fmt"
	"time"
)

// WindowKind is the shape of a window.
type WindowKind int

// The window kinds, as in Kafka Streams (sliding windows are not built).
const (
	Tumbling WindowKind = iota + 1 // fixed size, back to back
	Hopping                        // fixed size, starting every Advance; they overlap
	Session                        // per key, records closer than Gap share one window
)

// Windows says how records are grouped in time. Build it with
// TumblingWindows, HoppingWindows or SessionWindows.
//
// Fixed (tumbling, hopping) windows are [start, start+Size), aligned to the
// Unix epoch. A session window runs from its first record's time to its
// last's (both inclusive).
type Windows struct {
	Kind    WindowKind
	Size    time.Duration // tumbling, hopping
	Advance time.Duration // hopping; equals Size for tumbling
	Gap     time.Duration // session: the inactivity that ends a session
	// Grace is how long after a window's end late records are still
	// applied; the result is emitted once the watermark passes it.
	Grace time.Duration
}

// TumblingWindows returns back-to-back windows of the given size.
func TumblingWindows(size, grace time.Duration) Windows {
	return Windows{Kind: Tumbling, Size: size, Advance: size, Grace: grace}
}

// HoppingWindows returns windows of the given size starting every advance.
func HoppingWindows(size, advance, grace time.Duration) Windows {
	return Windows{Kind: Hopping, Size: size, Advance: advance, Grace: grace}
}

// SessionWindows returns per-key sessions that end after gap without records.
func SessionWindows(gap, grace time.Duration) Windows {
	return Windows{Kind: Session, Gap: gap, Grace: grace}
}

// ErrInvalidWindows is wrapped by Validate's errors.
var ErrInvalidWindows = errors.New("invalid windows")

// Validate reports a window definition that cannot work.
func (w Windows) Validate() error {
	if w.Grace < 0 {
		return fmt.Errorf("%w: grace %v is negative", ErrInvalidWindows, w.Grace)
	}
	switch w.Kind {
	case Tumbling, Hopping:
		if w.Size <= 0 {
			return fmt.Errorf("%w: size %v must be positive", ErrInvalidWindows, w.Size)
		}
		if w.Advance <= 0 || w.Advance > w.Size {
			return fmt.Errorf("%w: advance %v must be in (0, size %v]", ErrInvalidWindows, w.Advance, w.Size)
		}
		if w.Kind == Tumbling && w.Advance != w.Size {
			return fmt.Errorf("%w: tumbling windows advance by their size", ErrInvalidWindows)
		}
	case Session:
		if w.Gap <= 0 {
			return fmt.Errorf("%w: session gap %v must be positive", ErrInvalidWindows, w.Gap)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidWindows, w.Kind)
	}
	return nil
}

// floorDiv rounds towards minus infinity (event times before 1970 stay aligned).
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
