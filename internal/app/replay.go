package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
)

// ReplayRequest selects what to re-deliver to a service's consumer group.
type ReplayRequest struct {
	Topic         string     `json:"topic"`
	FromOffset    *int64     `json:"fromOffset"` // every partition from this offset; default: the log start
	FromTime      *time.Time `json:"fromTime"`   // or from the first record at or after this time
	CorrelationID string     `json:"correlationId"`
	Key           string     `json:"key"` // only records with this key (an entity id)
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Read        int64 `json:"read"`        // records read from the topic
	Redelivered int64 `json:"redelivered"` // records matching the filters, handed to the group
}

// replay re-delivers the selected records of req.Topic to c, partition by
// partition, in offset order, up to the end offsets at the start of the
// replay. The inbox skips events the group processed before, so a replay
// applies only what is missing and running it twice is harmless.
func (a *App) replay(ctx context.Context, c *inbox.Consumer, req ReplayRequest) (ReplayResult, error) {
	var res ReplayResult
	if !slices.Contains(c.Topics(), req.Topic) {
		return res, eventmart.Errorf(eventmart.EINVALID, "%s does not consume %q (it consumes %v)", c.Group, req.Topic, c.Topics())
	}
	if req.FromOffset != nil && req.FromTime != nil {
		return res, eventmart.Errorf(eventmart.EINVALID, "give fromOffset or fromTime, not both")
	}
	offs, err := a.cfg.Bus.Offsets(ctx, req.Topic)
	if err != nil {
		return res, err
	}
	if req.FromTime != nil {
		if offs, err = a.cfg.Bus.OffsetAfter(ctx, req.Topic, *req.FromTime); err != nil {
			return res, err
		}
	}
	for _, o := range offs {
		from := o.Start
		if req.FromOffset != nil {
			from = max(*req.FromOffset, o.Start)
		}
		for from < o.End {
			msgs, err := a.cfg.Bus.Read(ctx, req.Topic, o.Partition, from, 500)
			if err != nil {
				return res, err
			}
			if len(msgs) == 0 {
				break
			}
			var batch []*bus.Message
			for _, m := range msgs {
				if m.Offset >= o.End {
					break
				}
				res.Read++
				if (req.CorrelationID == "" || m.Header(bus.HeaderCorrelationID) == req.CorrelationID) && (req.Key == "" || string(m.Key) == req.Key) {
					batch = append(batch, m)
				}
				from = m.Offset + 1
			}
			if len(batch) > 0 {
				if err := c.Handle(ctx, batch); err != nil {
					return res, fmt.Errorf("app: replay %s/%d: %w", req.Topic, o.Partition, err)
				}
				res.Redelivered += int64(len(batch))
			}
			if msgs[len(msgs)-1].Offset >= o.End-1 {
				break
			}
		}
	}
	return res, nil
}

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
	res, err := a.replay(r.Context(), c, req)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}
