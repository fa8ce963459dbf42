package console

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Bounds of the message browser.
const (
	DefaultMessages = 50
	MaxMessages     = 500
	// MaxKeyScan is how many of a partition's newest records a search by
	// key reads: a key's records are all in one partition (the key's
	// murmur2 hash), but finding them means reading it.
	MaxKeyScan = 5000
)

var messageParams = []string{"topic", "partition", "offset", "key", "from", "limit"}

// Messages serves GET /api/v1/admin/messages: the records of one topic as
// envelopes (StreamEvent), oldest first, found by
//
//   - partition and offset: limit records from that offset;
//   - key: the key's records among its partition's newest MaxKeyScan;
//   - from (RFC 3339): the first limit records at or after that time
//     (of one partition, or of all merged by time);
//   - nothing more: the newest limit records (of one partition, or of all).
//
// {"messages": [StreamEvent…], "scanned": n}: scanned is how many records
// were read to answer.
func (c *Console) Messages(w http.ResponseWriter, r *http.Request) {
	c.init()
	q := r.URL.Query()
	for name := range q {
		if !slices.Contains(messageParams, name) {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: %s)", name, strings.Join(messageParams, ", ")))
			return
		}
	}
	topic := q.Get("topic")
	if !slices.Contains(watchedTopics(), topic) {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "topic: want one of %s", strings.Join(watchedTopics(), ", ")))
		return
	}
	limit, err := httpx.IntParam(q.Get("limit"), "limit", DefaultMessages, 1, MaxMessages)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	ctx := r.Context()
	offs, err := c.Bus.Offsets(ctx, topic)
	if err != nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: offsets of %s: %v", topic, err))
		return
	}
	parts := offs
	if s := q.Get("partition"); s != "" {
		p, err := httpx.IntParam(s, "partition", 0, 0, len(offs)-1)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		parts = offs[p : p+1]
	}
	var from time.Time
	if s := q.Get("from"); s != "" {
		if from, err = time.Parse(time.RFC3339, s); err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "from: want an RFC 3339 time such as 2026-01-02T15:04:05Z"))
			return
		}
	}
	key, offset := q.Get("key"), q.Get("offset")
	var msgs []*bus.Message
	scanned := 0
	switch {
	case key != "":
		o := offs[bus.PartitionFor([]byte(key), int32(len(offs)))]
		start := max(o.Start, o.End-MaxKeyScan)
		err = c.readRange(ctx, topic, o.Partition, start, o.End, func(m *bus.Message) {
			scanned++
			if string(m.Key) == key {
				msgs = append(msgs, m)
			}
		})
		if len(msgs) > limit {
			msgs = msgs[len(msgs)-limit:] // the newest
		}
	case offset != "":
		if len(parts) != 1 {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "offset: give the partition too"))
			return
		}
		o := parts[0]
		n, perr := strconv.ParseInt(offset, 10, 64)
		if perr != nil || n < 0 {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "offset: want an integer, 0 or more"))
			return
		}
		start := max(n, o.Start)
		err = c.readRange(ctx, topic, o.Partition, start, min(o.End, start+int64(limit)), func(m *bus.Message) { scanned++; msgs = append(msgs, m) })
	default:
		starts := map[int32]int64{}
		if !from.IsZero() {
			after, aerr := c.Bus.OffsetAfter(ctx, topic, from)
			if aerr != nil {
				httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: offsets of %s: %v", topic, aerr))
				return
			}
			for _, a := range after {
				starts[a.Partition] = a.Start
			}
		}
		for _, o := range parts {
			start, end := max(o.Start, o.End-int64(limit)), o.End // the newest
			if !from.IsZero() {
				start = max(starts[o.Partition], o.Start)
				end = min(o.End, start+int64(limit))
			}
			if err = c.readRange(ctx, topic, o.Partition, start, end, func(m *bus.Message) { scanned++; msgs = append(msgs, m) }); err != nil {
				break
			}
		}
		slices.SortStableFunc(msgs, func(a, b *bus.Message) int {
			return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
		})
		if len(msgs) > limit {
			if from.IsZero() {
				msgs = msgs[len(msgs)-limit:] // the newest
			} else {
				msgs = msgs[:limit] // the first after from
			}
		}
	}
	if err != nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: %v", err))
		return
	}
	out := make([]StreamEvent, len(msgs))
	for i, m := range msgs {
		out[i] = toStreamEvent(m)
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"messages": out, "scanned": scanned})
}

// readRange hands fn the records of a partition from start up to end.
func (c *Console) readRange(ctx context.Context, topic string, partition int32, start, end int64, fn func(*bus.Message)) error {
	for start < end {
		msgs, err := c.Bus.Read(ctx, topic, partition, start, int(min(end-start, 500)))
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			if m.Offset >= end {
				return nil
			}
			start = m.Offset + 1
			fn(m)
		}
	}
	return nil
}
