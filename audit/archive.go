package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// ArchivedRecord is a recorded event where it sat on its topic: what
// replay re-delivers when the topic itself no longer holds it.
type ArchivedRecord struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       string          `json:"key"`
	Envelope  json.RawMessage `json:"envelope"`
}

// ArchivePage is the answer of GET /admin/archive.
type ArchivePage struct {
	Records []ArchivedRecord `json:"records"`
	// Next is the offset to ask for the next page from, or -1 when the
	// range is exhausted.
	Next int64 `json:"next"`
}

// ArchiveQuery selects records of one topic partition by offset range
// [FromOffset, ToOffset), and optionally by event time (Unix ms).
type ArchiveQuery struct {
	Topic      string
	Partition  int32
	FromOffset int64
	ToOffset   int64
	FromTime   *int64
	Limit      int
}

// Archive returns one page of q, in offset order.
func (s *Service) Archive(ctx context.Context, q ArchiveQuery) (ArchivePage, error) {
	page := ArchivePage{Records: []ArchivedRecord{}, Next: -1}
	cond := `topic = ? AND record_partition = ? AND record_offset >= ? AND record_offset < ?`
	args := []any{q.Topic, q.Partition, q.FromOffset, q.ToOffset}
	if q.FromTime != nil {
		cond += ` AND occurred_at >= ?`
		args = append(args, *q.FromTime)
	}
	var err error
	page.Records, err = sqldb.List(ctx, s.d.DB, `SELECT record_offset, record_key, envelope FROM audit_log WHERE `+cond+` ORDER BY record_offset LIMIT ?`,
		append(args, q.Limit), func(r sqldb.Scanner) (ArchivedRecord, error) {
			rec := ArchivedRecord{Topic: q.Topic, Partition: q.Partition}
			var env string
			err := r.Scan(&rec.Offset, &rec.Key, &env)
			rec.Envelope = json.RawMessage(env)
			return rec, err
		})
	if err != nil {
		return page, fmt.Errorf("audit: archive: %w", err)
	}
	if len(page.Records) == q.Limit {
		page.Next = page.Records[len(page.Records)-1].Offset + 1
	}
	return page, nil
}

// handleArchive: GET /admin/archive?topic=&partition=&fromOffset=&toOffset=&from=&limit=
// → ArchivePage. topic and partition are required; the offset range
// defaults to everything.
func (s *Service) handleArchive(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	v := r.URL.Query()
	q := ArchiveQuery{Topic: v.Get("topic"), ToOffset: 1<<63 - 1}
	if _, ok := event.LookupTopic(event.Topic(q.Topic)); !ok {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "topic: unknown topic %q", q.Topic))
		return
	}
	p, err := strconv.ParseInt(v.Get("partition"), 10, 32)
	if err != nil || p < 0 {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "partition: must be a partition number"))
		return
	}
	q.Partition = int32(p)
	for name, dst := range map[string]*int64{"fromOffset": &q.FromOffset, "toOffset": &q.ToOffset} {
		if s := v.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "%s: must be an offset (an integer ≥ 0)", name))
				return
			}
			*dst = n
		}
	}
	if q.FromTime, err = timeParam(v.Get("from"), "from"); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if q.Limit, err = httpx.IntParam(v.Get("limit"), "limit", DefaultLimit, 1, MaxLimit); err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.Archive(r.Context(), q)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

// Archived returns the records an event of the trail's archive on
// audit-events carries, in seq order, once it has checked that they chain
// from its prevHash to its hash: an AuditBlockRecorded's records (a block,
// or a part of one), or the one record of an AuditRecorded (written one
// per record before the trail was recorded in blocks; audit-events keeps
// them seven years). A reader of the archive takes either alike. Any
// other payload, or records that do not chain, is an error.
func Archived(p event.Payload) ([]event.AuditBlockRecord, error) {
	var recs []event.AuditBlockRecord
	var prev, last string
	switch a := p.(type) {
	case *event.AuditBlockRecorded:
		recs, prev, last = a.Records, a.PrevHash, a.Hash
	case *event.AuditRecorded:
		recs = []event.AuditBlockRecord{{Seq: a.Seq, EventID: a.EventID, Type: a.Type, Topic: a.Topic, Partition: a.Partition,
			Offset: a.Offset, Key: a.Key, RecordedAt: a.RecordedAt, Envelope: a.Envelope}}
		prev, last = a.PrevHash, a.Hash
	default:
		return nil, fmt.Errorf("audit: %s is not an archive event", p.EventType())
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("audit: %s without records", p.EventType())
	}
	h := prev
	for i, ar := range recs {
		if i > 0 && ar.Seq != recs[i-1].Seq+1 {
			return nil, fmt.Errorf("audit: archived record %d follows %d: not a stretch of the chain", ar.Seq, recs[i-1].Seq)
		}
		h = chainHash(h, &record{Seq: ar.Seq, EventID: ar.EventID, Topic: ar.Topic, Key: ar.Key, RecordedAt: ar.RecordedAt, Envelope: ar.Envelope})
	}
	if h != last {
		return nil, fmt.Errorf("audit: archived records %d to %d do not chain from %s to %s", recs[0].Seq, recs[len(recs)-1].Seq, prev, last)
	}
	return recs, nil
}
