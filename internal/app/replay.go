package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
)

// ReplayRequest selects what to re-deliver to a service's consumer group.
type ReplayRequest struct {
	Topic         string     `json:"topic"`
	FromOffset    *int64     `json:"fromOffset"` // every partition from this offset; default: the log start
	FromTime      *time.Time `json:"fromTime"`   // or from the first record at or after this time
	CorrelationID string     `json:"correlationId"`
	Key           string     `json:"key"` // only records with this key (an entity id)
	// Reapply hands on the records older than the group's memory of the
	// events it applied too (inbox.Consumer.Horizon): those it has
	// forgotten are applied again.
	Reapply bool `json:"reapply"`
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Read        int64 `json:"read"`        // records read, from the topic and the archive
	Redelivered int64 `json:"redelivered"` // records matching the filters, handed to the group
	// FromArchive counts the records read from the audit archive because
	// the topic's retention had deleted them.
	FromArchive int64 `json:"fromArchive"`
	// BeyondRetention counts the records matching the filters that were
	// not handed on: their events are older than the group remembers what
	// it applied (EVENTMART_INBOX_RETENTION), so one it applied before
	// would be applied again. Reapply hands them on.
	BeyondRetention int64 `json:"beyondRetention"`
}

// ReplayProgress is one line of a replay's progress: the counts so far,
// after a batch of a partition was replayed (at most five lines a second)
// and after each partition (always: one line per partition).
type ReplayProgress struct {
	ReplayResult
	Partition     int32 `json:"partition"`     // the partition being replayed
	Partitions    int   `json:"partitions"`    // of the topic
	PartitionDone bool  `json:"partitionDone"` // Partition is replayed to its end
	Done          bool  `json:"done"`          // the last line: the counts are final
}

// replayBatch is how many records a replay reads and hands over at once.
const replayBatch = 500

// replay re-delivers the selected records of req.Topic to c, partition by
// partition, in offset order, up to the end offsets at the start of the
// replay. Where the requested start lies before what the topic still
// keeps, the missing records come from the audit service's archive first.
// The inbox skips events the group processed before, so a replay applies
// only what is missing and running it twice is harmless: it hands on no
// record of an event the group may have forgotten it applied
// (c.Forgotten), unless req.Reapply. progress, if not nil, is called after
// each batch.
func (a *App) replay(ctx context.Context, c *inbox.Consumer, req ReplayRequest, progress func(ReplayProgress)) (ReplayResult, error) {
	var res ReplayResult
	if !slices.Contains(c.Topics(), req.Topic) {
		return res, eventmart.Errorf(eventmart.EINVALID, "%s does not consume %q (it consumes %v)", c.Group, req.Topic, c.Topics())
	}
	if req.FromOffset != nil && req.FromTime != nil {
		return res, eventmart.Errorf(eventmart.EINVALID, "give fromOffset or fromTime, not both")
	}
	if req.FromOffset != nil && *req.FromOffset < 0 {
		return res, eventmart.Errorf(eventmart.EINVALID, "fromOffset must not be negative")
	}
	offs, err := a.cfg.Bus.Offsets(ctx, req.Topic)
	if err != nil {
		return res, err
	}
	from := make([]int64, len(offs))
	for i, o := range offs {
		from[i] = o.Start
		if req.FromOffset != nil {
			from[i] = *req.FromOffset
		}
	}
	if req.FromTime != nil {
		after, err := a.cfg.Bus.OffsetAfter(ctx, req.Topic, *req.FromTime)
		if err != nil {
			return res, err
		}
		for i, o := range after {
			from[i] = o.Start
			if o.Start == offs[i].Start {
				from[i] = 0 // what retention deleted may be as late as fromTime: ask the archive
			}
		}
	}
	forgotten := c.Forgotten()
	keep := func(m *bus.Message) bool {
		if (req.CorrelationID != "" && m.Header(eventmsg.HeaderCorrelationID) != req.CorrelationID) || (req.Key != "" && string(m.Key) != req.Key) {
			return false
		}
		if !req.Reapply && forgotten(m.Header(eventmsg.HeaderEventID)) {
			res.BeyondRetention++
			return false
		}
		return true
	}
	for i, o := range offs {
		err := a.readRange(ctx, req.Topic, o, from[i], req.FromTime, &res, func(msgs []*bus.Message) error {
			batch := slices.DeleteFunc(msgs, func(m *bus.Message) bool { return !keep(m) })
			if len(batch) > 0 {
				if err := c.Handle(ctx, batch); err != nil {
					return fmt.Errorf("app: replay %s/%d: %w", req.Topic, o.Partition, err)
				}
				res.Redelivered += int64(len(batch))
			}
			if progress != nil {
				progress(ReplayProgress{ReplayResult: res, Partition: o.Partition, Partitions: len(offs)})
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		if progress != nil {
			progress(ReplayProgress{ReplayResult: res, Partition: o.Partition, Partitions: len(offs), PartitionDone: true})
		}
	}
	if progress != nil {
		progress(ReplayProgress{ReplayResult: res, Partition: int32(len(offs) - 1), Partitions: len(offs), Done: true})
	}
	return res, nil
}

// readRange hands fn, batch by batch in offset order, the records of
// partition o.Partition of topic from offset from up to o.End: first
// those retention deleted (below o.Start) as the audit service archived
// them, at or after fromTime if given, then the topic's own. It counts
// what it read in res.
func (a *App) readRange(ctx context.Context, topic string, o bus.PartitionOffsets, from int64, fromTime *time.Time, res *ReplayResult, fn func([]*bus.Message) error) error {
	if from < o.Start {
		if err := a.readArchive(ctx, topic, o.Partition, from, o.Start, fromTime, res, fn); err != nil {
			return err
		}
		from = o.Start
	}
	for from < o.End {
		msgs, err := a.cfg.Bus.Read(ctx, topic, o.Partition, from, replayBatch)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		if i := slices.IndexFunc(msgs, func(m *bus.Message) bool { return m.Offset >= o.End }); i >= 0 {
			msgs = msgs[:i]
		}
		if len(msgs) == 0 {
			return nil
		}
		res.Read += int64(len(msgs))
		from = msgs[len(msgs)-1].Offset + 1
		if err := fn(msgs); err != nil {
			return err
		}
	}
	return nil
}

// readArchive reads partition p's records [from, to) as the audit service
// archived them (GET /admin/archive), page by page, in offset order,
// rebuilt into the messages they were, and hands them to fn.
func (a *App) readArchive(ctx context.Context, topic string, p int32, from, to int64, fromTime *time.Time, res *ReplayResult, fn func([]*bus.Message) error) error {
	call := service.Deps{Call: a.client, BaseURL: a.baseURL}
	for from >= 0 && from < to {
		q := url.Values{"topic": {topic}, "partition": {strconv.Itoa(int(p))}, "fromOffset": {strconv.FormatInt(from, 10)},
			"toOffset": {strconv.FormatInt(to, 10)}, "limit": {strconv.Itoa(audit.MaxLimit)}}
		if fromTime != nil {
			q.Set("from", fromTime.UTC().Format(time.RFC3339Nano))
		}
		var page audit.ArchivePage
		if err := call.CallJSON(ctx, audit.Name, "GET", "/api/v1/admin/archive?"+q.Encode(), nil, &page); err != nil {
			return fmt.Errorf("app: read %s/%d from the audit archive (offsets %d to %d are past the topic's retention): %w", topic, p, from, to, err)
		}
		msgs := make([]*bus.Message, 0, len(page.Records))
		for _, r := range page.Records {
			e, err := event.Decode(r.Envelope)
			if err != nil {
				return fmt.Errorf("app: archived record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			e.Key = r.Key
			m, err := eventmsg.Encode(ctx, e)
			if err != nil {
				return fmt.Errorf("app: archived record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			m.Partition, m.Offset = r.Partition, r.Offset
			msgs = append(msgs, m)
		}
		res.Read += int64(len(msgs))
		res.FromArchive += int64(len(msgs))
		if len(msgs) > 0 {
			if err := fn(msgs); err != nil {
				return err
			}
		}
		from = page.Next
	}
	return nil
}

// handleReplay: POST /admin/replay/{service} → ReplayResult. A client that
// accepts application/x-ndjson gets ReplayProgress lines as the replay
// goes, the last with done: true (or an error body, if it failed midway).
func (a *App) handleReplay(w http.ResponseWriter, r *http.Request, c *inbox.Consumer) {
	var req ReplayRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if req.Topic == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "topic is required"))
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		res, err := a.replay(r.Context(), c, req, nil)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, res)
		return
	}
	stream := newProgressStream(w)
	if _, err := a.replay(r.Context(), c, req, stream.report); err != nil {
		stream.fail(r, err)
	}
}
