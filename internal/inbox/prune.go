package inbox

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// The processed-event records (processed_events) are what makes a
// redelivered or replayed event a duplicate. Every event a group applies
// adds one, so without an end they grow with the traffic forever. With a
// Retention the consumer forgets those of events older than it
// (RunPrune); a replay hands on no record of an event the group may have
// forgotten (Forgotten), which would then be applied again (internal/app's
// replay).
//
// Only records of UUIDv7 event ids (every id event.NewID makes) are
// pruned: their ids sort by the time they carry, so a prune is a range of
// the primary key and the age of an event is read from its id alone. An
// id of another kind is kept, and never beyond the horizon.

// pruneChunk is how many records one statement of a prune deletes: a
// short transaction, which holds the table's pages briefly while the
// group goes on inserting at the other end of the key range.
const pruneChunk = 5000

// pruneChunkPause is how long a prune waits between full chunks: the
// first prune of a table that grew for months deletes millions of rows,
// and should not take the database from the consumers meanwhile.
const pruneChunkPause = 50 * time.Millisecond

// PrunePoll is how often RunPrune looks for records past the retention.
const PrunePoll = time.Hour

// Horizon is the time before which the group may have forgotten the
// events it applied: now minus Retention; the zero time when it forgets
// nothing (no Retention, or handlers that deduplicate themselves).
func (c *Consumer) Horizon() time.Time {
	if c.Retention <= 0 || c.OwnDeduplication {
		return time.Time{}
	}
	return c.now().Add(-c.Retention)
}

// RunPrune deletes the processed-event records older than Retention now
// and then every PrunePoll, until ctx is cancelled; with no Retention (or
// with OwnDeduplication) it returns at once. A failed prune is logged and
// tried again at the next poll: the records only wait longer.
func (c *Consumer) RunPrune(ctx context.Context) error {
	if c.Horizon().IsZero() {
		return nil
	}
	t := time.NewTicker(PrunePoll)
	defer t.Stop()
	for {
		start, before := c.now(), c.Horizon()
		n, err := c.Prune(ctx, before)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			c.Log.Error("inbox: prune of processed-event records failed; trying again later", "group", c.Group, "error", err, "retry_in", PrunePoll.String())
		case n > 0:
			c.Log.Info("inbox: processed-event records pruned", "group", c.Group, "records", n, "before", before, "took", c.now().Sub(start).String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Prune deletes the group's records of UUIDv7 event ids older than
// before, a chunk per statement with a short pause between chunks, and
// returns how many it deleted. A ctx that ends stops it between chunks
// (no error) or fails the statement under way.
func (c *Consumer) Prune(ctx context.Context, before time.Time) (int64, error) {
	bound := v7Floor(before)
	var total int64
	for {
		res, err := c.DB.Exec(ctx, `DELETE FROM processed_events WHERE event_id IN (
			SELECT event_id FROM processed_events WHERE event_id < ? AND substr(event_id, 15, 1) = '7'
			ORDER BY event_id LIMIT `+fmt.Sprint(pruneChunk)+`)`, bound)
		if err != nil {
			return total, fmt.Errorf("inbox: prune processed events: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("inbox: prune processed events: %w", err)
		}
		total += n
		if c.Metrics != nil {
			c.Metrics.Pruned.Add(float64(n))
		}
		if n < pruneChunk {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, nil
		case <-time.After(pruneChunkPause):
		}
	}
}

// v7Floor is the smallest UUIDv7 (as text) of time t: every UUIDv7 of an
// earlier millisecond sorts before it, every one of t's or later at or
// after it.
func v7Floor(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	var b [6]byte
	for i := range b {
		b[i] = byte(ms >> (40 - 8*i))
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:] + "-7000-0000-000000000000"
}

// Forgotten returns whether the group may have forgotten, as of now, that
// it applied the event with a given id: whether a prune to the Horizon
// deletes its record (always false without a Retention). The horizon is
// read once, here: a replay asks of every record it reads.
func (c *Consumer) Forgotten() func(eventID string) bool {
	h := c.Horizon()
	if h.IsZero() {
		return func(string) bool { return false }
	}
	floor := v7Floor(h)
	return func(eventID string) bool { return pruned(eventID, floor) }
}

// pruned is Prune's condition on a record's event id, for a prune to
// floor (v7Floor): a UUIDv7 id that sorts before it.
func pruned(eventID, floor string) bool {
	return len(eventID) > 14 && eventID[14] == '7' && eventID < floor
}
