package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// RebuildResult is what rebuilding one projection did.
type RebuildResult struct {
	Projection string `json:"projection"`
	Table      string `json:"table"`
	ReplayResult
	// Applied counts the events read into the fresh table; CaughtUp those
	// that arrived during the rebuild, applied again after the swap.
	Applied  int64 `json:"applied"`
	CaughtUp int64 `json:"caughtUp"`
	// FromStore: rebuilt from the service's event store (Applied counts
	// the events read), not from topics.
	FromStore bool `json:"fromStore,omitempty"`
}

// rebuild rebuilds every projection of service svc from scratch: a fresh
// table is filled from all the events of its topics (from the audit
// archive where retention deleted them), swapped in for the live table in
// one transaction, and brought up to date with the events that arrived
// meanwhile. The live consumer keeps running throughout; projections are
// idempotent, so events seen twice around the swap change nothing.
func (a *App) rebuild(ctx context.Context, svc string, progress func(ReplayProgress)) ([]RebuildResult, error) {
	pj, ok := a.services[svc].(service.Projector)
	if !ok {
		return nil, eventmart.Errorf(eventmart.EINVALID, "the %s service has no read model to rebuild", svc)
	}
	db := a.dbByName[svc]
	var out []RebuildResult
	for _, p := range pj.Projections() {
		res, err := a.rebuildOne(ctx, db, p, progress)
		if err != nil {
			return out, fmt.Errorf("app: rebuild %s's %s: %w", svc, p.Name, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func (a *App) rebuildOne(ctx context.Context, db *sqldb.DB, p service.Projection, progress func(ReplayProgress)) (RebuildResult, error) {
	res := RebuildResult{Projection: p.Name, Table: p.Table}
	if p.Rebuild != nil { // from the service's event store
		var err error
		res.FromStore = true
		res.Applied, err = p.Rebuild(ctx, db)
		return res, err
	}
	// A name of its own per rebuild: PostgreSQL names the primary key's
	// index after the table, and keeps that name through the rename.
	fresh := fmt.Sprintf("%s_rebuild_%d", p.Table, time.Now().UnixMilli())
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf(p.Create, fresh))
		return err
	}); err != nil {
		return res, err
	}
	swapped := false
	defer func() {
		if !swapped { // a failed or cancelled rebuild leaves no table behind
			dctx := context.WithoutCancel(ctx)
			db.InTx(dctx, func(tx *sqldb.Tx) error {
				_, err := tx.Exec(dctx, `DROP TABLE IF EXISTS `+fresh)
				return err
			})
		}
	}()
	ends := map[string][]bus.PartitionOffsets{}
	err := a.applyPipelined(ctx, db, p, fresh, &res.Applied, func(fn func([]*bus.Message) error) error {
		for _, topic := range p.Topics {
			offs, err := a.cfg.Bus.Offsets(ctx, topic)
			if err != nil {
				return err
			}
			ends[topic] = offs
			for _, o := range offs {
				if err := a.readRange(ctx, topic, o, 0, nil, &res.ReplayResult, fn); err != nil {
					return err
				}
				if progress != nil {
					progress(ReplayProgress{ReplayResult: res.ReplayResult, Partition: o.Partition, Partitions: len(offs), PartitionDone: true})
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		if _, err := tx.Exec(ctx, `DROP TABLE `+p.Table); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+fresh+` RENAME TO `+p.Table); err != nil {
			return err
		}
		if p.Swapped != nil {
			return p.Swapped(ctx, tx)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("swap in the rebuilt table: %w", err)
	}
	swapped = true
	err = a.applyPipelined(ctx, db, p, p.Table, &res.CaughtUp, func(fn func([]*bus.Message) error) error {
		for _, topic := range p.Topics {
			now, err := a.cfg.Bus.Offsets(ctx, topic)
			if err != nil {
				return err
			}
			for i, o := range now {
				if err := a.readRange(ctx, topic, o, ends[topic][i].End, nil, &res.ReplayResult, fn); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// handleRebuild: POST /admin/rebuild/{service} → {"rebuilt": [RebuildResult]},
// or NDJSON progress lines as for replay, the last {"done": true, "rebuilt": […]}.
func (a *App) handleRebuild(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	svc := r.PathValue("service")
	if _, ok := a.services[svc]; !ok {
		httpx.Error(w, r, eventmart.Errorf(eventmart.ENOTFOUND, "service %q does not run here", svc))
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		res, err := a.rebuild(r.Context(), svc, nil)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]any{"rebuilt": res})
		return
	}
	stream := newProgressStream(w)
	res, err := a.rebuild(r.Context(), svc, stream.report)
	if err != nil {
		stream.fail(r, err)
		return
	}
	stream.done(map[string]any{"done": true, "rebuilt": res})
}

// progressStream writes NDJSON progress lines, at most one per 200ms but
// the last.
type progressStream struct {
	enc  *json.Encoder
	rc   *http.ResponseController
	last time.Time
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return &progressStream{enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
}

func (s *progressStream) report(p ReplayProgress) {
	if !p.Done && !p.PartitionDone && time.Since(s.last) < 200*time.Millisecond {
		return
	}
	s.last = time.Now()
	s.done(p)
}

func (s *progressStream) done(v any) {
	s.enc.Encode(v)
	s.rc.Flush()
}

// fail ends the stream with the error body.
func (s *progressStream) fail(r *http.Request, err error) {
	// The caller's mistakes (a topic the service does not consume…) are
	// not the server's errors: info for 4xx, warn for 5xx, error for internal.
	level := slog.LevelInfo
	switch code := eventmart.ErrorCode(err); {
	case code == eventmart.EINTERNAL:
		level = slog.LevelError
	case httpx.Status(code) >= 500:
		level = slog.LevelWarn
	}
	httpx.Logger(r.Context()).Log(r.Context(), level, "admin operation failed", "path", r.URL.Path, "error", err)
	s.done(httpx.ErrorBodyOf(err))
}

// applyPipelined applies to table, in order, the records read hands to
// its callback, while read goes on: a batch is decoded (on every core) as
// soon as it is read, and applied in one transaction by a goroutine of its
// own while the next batches are read and decoded. counter counts the
// events applied. A failed transaction stops the reading; read's error or
// the transaction's is returned.
func (a *App) applyPipelined(ctx context.Context, db *sqldb.DB, p service.Projection, table string, counter *int64,
	read func(fn func([]*bus.Message) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []decoded, 2)
	applied := make(chan error, 1)
	go func() {
		var err error
		for events := range batches {
			if err != nil {
				continue // drain: the reader stops at its next batch
			}
			err = db.InTx(ctx, func(tx *sqldb.Tx) error {
				for _, d := range events {
					if d.e == nil {
						continue // not an event: the live consumer dead-lettered it
					}
					if err := p.Apply(ctx, tx, table, d.e, d.p); err != nil {
						return err
					}
					*counter++
				}
				return nil
			})
			if err != nil {
				cancel()
			}
		}
		applied <- err
	}()
	rerr := read(func(msgs []*bus.Message) error {
		select {
		case batches <- decodeAll(msgs):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(batches)
	if err := <-applied; err != nil {
		return err // the cause of a reader's cancellation, if any
	}
	return rerr
}

type decoded struct {
	e *event.Envelope // nil: not a valid event
	p event.Payload
}

// decodeAll decodes and validates msgs on every core (JSON decoding and
// schema validation are most of a rebuild's work), keeping their order.
func decodeAll(msgs []*bus.Message) []decoded {
	out := make([]decoded, len(msgs))
	workers := runtime.GOMAXPROCS(0)
	per := (len(msgs) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += per {
		hi := min(lo+per, len(msgs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				e, err := eventmsg.Decode(msgs[i])
				if err != nil {
					continue
				}
				p, err := e.Payload()
				if err != nil {
					continue
				}
				out[i] = decoded{e, p}
			}
		}()
	}
	wg.Wait()
	return out
}
