package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/internal/httpx"
)

// TopicInfo is one topic as GET /api/v1/admin/topics shows it.
type TopicInfo struct {
	Name        string          `json:"name"`
	Partitions  int32           `json:"partitions"`
	Retention   string          `json:"retention"`   // a Go duration, "" when kept forever
	RetentionMs int64           `json:"retentionMs"` // 0 when kept forever
	Messages    int64           `json:"messages"`    // records kept: the sum of end - start
	Offsets     []PartitionInfo `json:"offsets"`
	Groups      []GroupLag      `json:"groups"` // the consumer groups subscribed to the topic
}

// PartitionInfo is a partition's log start and end offsets.
type PartitionInfo struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
}

// GroupLag is a consumer group's lag on one topic.
type GroupLag struct {
	Group      string             `json:"group"`
	Lag        int64              `json:"lag"` // the sum over the partitions
	Partitions []bus.PartitionLag `json:"partitions"`
}

// Topics serves GET /api/v1/admin/topics: every topic of the bus with its
// partitions, retention and offsets, and for each consumer group
// subscribed to it the group's lag in total and per partition.
// {"topics": [TopicInfo…], "consumers": [Consumer…], "warnings": [string…]};
// warnings name services whose subscriptions could not be asked.
func (c *Console) Topics(w http.ResponseWriter, r *http.Request) {
	c.init()
	ctx := r.Context()
	topics, err := c.Bus.Topics(ctx)
	if err != nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: %v", err))
		return
	}
	consumers, cerr := c.Consumers(ctx)
	warnings := []string{}
	if cerr != nil {
		warnings = append(warnings, cerr.Error())
	}
	byTopic := map[string]*TopicInfo{}
	out := make([]*TopicInfo, 0, len(topics))
	for _, t := range topics {
		info := &TopicInfo{Name: t.Name, Partitions: t.Partitions, Offsets: []PartitionInfo{}, Groups: []GroupLag{}}
		if t.Retention > 0 {
			info.Retention, info.RetentionMs = t.Retention.String(), t.Retention.Milliseconds()
		}
		offs, err := c.Bus.Offsets(ctx, t.Name)
		if err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: offsets of %s: %v", t.Name, err))
			return
		}
		for _, o := range offs {
			info.Offsets = append(info.Offsets, PartitionInfo{o.Partition, o.Start, o.End})
			info.Messages += o.End - o.Start
		}
		byTopic[t.Name] = info
		out = append(out, info)
	}
	for _, cons := range consumers {
		var topics []string
		for _, t := range cons.Topics {
			if byTopic[t] != nil {
				topics = append(topics, t)
			}
		}
		if len(topics) == 0 {
			continue
		}
		lags, err := c.Bus.Lag(ctx, cons.Group, topics)
		if err != nil {
			warnings = append(warnings, "lag of "+cons.Group+": "+err.Error())
			continue
		}
		groups := map[string]*GroupLag{}
		for _, l := range lags {
			g := groups[l.Topic]
			if g == nil {
				g = &GroupLag{Group: cons.Group}
				groups[l.Topic] = g
			}
			g.Lag += l.Lag
			g.Partitions = append(g.Partitions, l)
		}
		for _, t := range topics {
			if g := groups[t]; g != nil {
				byTopic[t].Groups = append(byTopic[t].Groups, *g)
			}
		}
	}
	for _, info := range out {
		slices.SortFunc(info.Groups, func(a, b GroupLag) int { return strings.Compare(a.Group, b.Group) })
	}
	if consumers == nil {
		consumers = []Consumer{}
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"topics": out, "consumers": consumers, "warnings": warnings})
}
