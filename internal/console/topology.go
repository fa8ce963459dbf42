package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/eventmsg"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Publish is an observed edge service → topic: the events of one type a
// service published in the window.
type Publish struct {
	Service   string  `json:"service"` // the envelope source, "order-service"
	Topic     string  `json:"topic"`
	EventType string  `json:"eventType"`
	Count     int     `json:"count"`
	PerMinute float64 `json:"perMinute"`
}

// Consume is an edge topic → service: a consumer group handles one event
// type. Declared edges come from the group's subscriptions; observed ones
// from causation links (the service published an event caused by one of
// this type, so it consumed it). Count is the number of distinct events of
// the type that caused events of the service in the window.
type Consume struct {
	Service   string  `json:"service"` // the consumer group, "payment-service"
	Topic     string  `json:"topic"`
	EventType string  `json:"eventType"`
	Declared  bool    `json:"declared"`
	Observed  bool    `json:"observed"`
	Count     int     `json:"count"`
	PerMinute float64 `json:"perMinute"`
}

// Topology is the answer of GET /api/v1/admin/topology.
type Topology struct {
	Window    string    `json:"window"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Records   int       `json:"records"`   // records read in the window
	Truncated bool      `json:"truncated"` // the window held more than MaxTopologyRecords: the oldest were left out
	Services  []string  `json:"services"`
	Topics    []string  `json:"topics"`
	Publishes []Publish `json:"publishes"`
	Consumes  []Consume `json:"consumes"`
	Warnings  []string  `json:"warnings"`
}

// Bounds of the topology's window and reading.
const (
	DefaultTopologyWindow = 5 * time.Minute
	MaxTopologyWindow     = 24 * time.Hour
	// MaxTopologyRecords bounds the records one topology reads per topic
	// partition; rates of busier partitions count the newest ones only.
	MaxTopologyRecords = 2000
)

// Topology serves GET /api/v1/admin/topology?window=5m: who publishes
// which event types to which topic and who consumes them, from the
// business topics' records of the window (publishers, causation links) and
// the consumer groups' subscriptions, with counts and rates per minute.
func (c *Console) Topology(w http.ResponseWriter, r *http.Request) {
	c.init()
	window := DefaultTopologyWindow
	for name := range r.URL.Query() {
		if name != "window" {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "unknown query parameter %q (allowed: window)", name))
			return
		}
	}
	if s := r.URL.Query().Get("window"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > MaxTopologyWindow {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "window: want a duration from 1s to %s, such as 5m", MaxTopologyWindow))
			return
		}
		window = d
	}
	topo, err := c.topology(r.Context(), window)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, topo)
}

// record is what the topology keeps of a record.
type record struct {
	topic, eventType, source, eventID, causationID string
}

func (c *Console) topology(ctx context.Context, window time.Duration) (*Topology, error) {
	to := c.Now()
	from := to.Add(-window)
	topo := &Topology{Window: durationText(window), From: from.UTC(), To: to.UTC(), Topics: watchedTopics(),
		Services: []string{}, Publishes: []Publish{}, Consumes: []Consume{}, Warnings: []string{}}
	var recs []record
	for _, t := range topo.Topics {
		offs, err := c.Bus.OffsetAfter(ctx, t, from)
		if err != nil {
			return nil, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: offsets of %s: %v", t, err)
		}
		for _, o := range offs {
			start := o.Start
			if o.End-start > MaxTopologyRecords {
				start, topo.Truncated = o.End-MaxTopologyRecords, true
			}
			for start < o.End {
				msgs, err := c.Bus.Read(ctx, t, o.Partition, start, int(min(o.End-start, 500)))
				if err != nil {
					return nil, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: read %s/%d: %v", t, o.Partition, err)
				}
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					if m.Offset >= o.End {
						break
					}
					start = m.Offset + 1
					recs = append(recs, record{t, m.Header(eventmsg.HeaderEventType), m.Header(eventmsg.HeaderSource), m.Header(eventmsg.HeaderEventID), m.Header(eventmsg.HeaderCausationID)})
				}
			}
		}
	}
	topo.Records = len(recs)
	minutes := window.Minutes()

	services := map[string]bool{}
	type pubKey struct{ service, topic, eventType string }
	pubs := map[pubKey]int{}
	byID := make(map[string]record, len(recs))
	for _, rec := range recs {
		pubs[pubKey{rec.source, rec.topic, rec.eventType}]++
		services[rec.source] = true
		if rec.eventID != "" {
			byID[rec.eventID] = rec
		}
	}
	for k, n := range pubs {
		topo.Publishes = append(topo.Publishes, Publish{k.service, k.topic, k.eventType, n, float64(n) / minutes})
	}
	slices.SortFunc(topo.Publishes, func(a, b Publish) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.EventType, b.EventType))
	})

	type consKey struct{ service, eventType string }
	cons := map[consKey]*Consume{}
	edge := func(service, eventType string) *Consume {
		k := consKey{service, eventType}
		if cons[k] == nil {
			cons[k] = &Consume{Service: service, EventType: eventType, Topic: string(event.TopicOf(event.Type(eventType)))}
		}
		return cons[k]
	}
	causes := map[consKey]map[string]bool{}
	for _, rec := range recs {
		cause, ok := byID[rec.causationID]
		if !ok || rec.causationID == rec.eventID {
			continue
		}
		k := consKey{rec.source, cause.eventType}
		if causes[k] == nil {
			causes[k] = map[string]bool{}
		}
		causes[k][cause.eventID] = true
	}
	for k, ids := range causes {
		e := edge(k.service, k.eventType)
		e.Observed, e.Count, e.PerMinute = true, len(ids), float64(len(ids))/minutes
	}
	consumers, err := c.Consumers(ctx)
	if err != nil {
		topo.Warnings = append(topo.Warnings, err.Error())
	}
	known := map[string]bool{}
	for _, cn := range consumers {
		services[cn.Group], known[cn.Group] = true, true
		for _, t := range cn.EventTypes {
			edge(cn.Group, t).Declared = true
		}
	}
	for _, e := range cons {
		if e.Observed && !e.Declared && known[e.Service] {
			topo.Warnings = append(topo.Warnings, fmt.Sprintf("%s published events caused by %s, which its group does not subscribe to", e.Service, e.EventType))
		}
		topo.Consumes = append(topo.Consumes, *e)
	}
	slices.SortFunc(topo.Consumes, func(a, b Consume) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.EventType, b.EventType))
	})
	for s := range services {
		if s != "" {
			topo.Services = append(topo.Services, s)
		}
	}
	slices.Sort(topo.Services)
	return topo, nil
}

// durationText writes d as people do: 5m, 1h, 1h30m, 90s (not 5m0s).
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
