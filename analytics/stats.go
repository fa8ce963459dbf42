package analytics

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart/internal/jsonw"
	"github.com/eventmart/eventmart/internal/stream"
)

// Counters are one window's figures: named integer counters summed over
// the window's events (amounts in minor units). The names are
// "<figure>|<label>", e.g. "orders|EUR"; Window turns them into the API's
// shape. Sums do not depend on the order of events, so the figures are
// the same for any interleaving of partitions (internal/stream).
type Counters map[string]int64

// Counter names. A counter with a label has it after "|".
const (
	cOrders     = "orders"     // |currency: OrderCreated
	cOrderValue = "orderValue" // |currency: OrderCreated totalCents
	cRevenue    = "revenue"    // |currency: PaymentProcessed amountCents
	cPaid       = "paid"       // |currency: PaymentProcessed count
	cFunnel     = "funnel"     // |cart, order, paid, shipped
	cFailed     = "declined"   // |code: PaymentFailed
	cCancelled  = "cancelled"  // |reasonCode: OrderCancelled
	cProduct    = "productQty" // |productId: quantity ordered (OrderCreated lines)
	cStockout   = "stockout"   // |productId: stock fell to zero or below
	cEvents     = "events"     // every event the service read
)

// contribution is what one event adds to one counter.
type contribution struct {
	name string
	n    int64
}

// contributions decodes an event's payload once and returns what it adds
// to the figures (nil for events no figure counts, apart from "events").
// A payload that does not decode counts only as an event.
func contributions(eventType string, payload json.RawMessage) []contribution {
	out := []contribution{{cEvents, 1}}
	switch eventType {
	case "CartCreated":
		out = append(out, contribution{cFunnel + "|cart", 1})
	case "OrderCreated":
		var p struct {
			TotalCents int64  `json:"totalCents"`
			Currency   string `json:"currency"`
			Lines      []struct {
				ProductID string `json:"productId"`
				Quantity  int64  `json:"quantity"`
			} `json:"lines"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		out = append(out, contribution{cOrders + "|" + p.Currency, 1}, contribution{cOrderValue + "|" + p.Currency, p.TotalCents},
			contribution{cFunnel + "|order", 1})
		for _, l := range p.Lines {
			out = append(out, contribution{cProduct + "|" + l.ProductID, l.Quantity})
		}
	case "PaymentProcessed":
		var p struct {
			AmountCents int64  `json:"amountCents"`
			Currency    string `json:"currency"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		out = append(out, contribution{cRevenue + "|" + p.Currency, p.AmountCents}, contribution{cPaid + "|" + p.Currency, 1},
			contribution{cFunnel + "|paid", 1})
	case "PaymentFailed":
		var p struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		out = append(out, contribution{cFailed + "|" + p.Code, 1})
	case "OrderShipped":
		out = append(out, contribution{cFunnel + "|shipped", 1})
	case "OrderCancelled":
		var p struct {
			ReasonCode string `json:"reasonCode"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		out = append(out, contribution{cCancelled + "|" + p.ReasonCode, 1})
	case "InventoryAdjusted":
		var p struct {
			ProductID string `json:"productId"`
			Delta     int64  `json:"delta"`
			Level     struct {
				Available int64 `json:"available"`
			} `json:"level"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		if p.Delta < 0 && p.Level.Available <= 0 {
			out = append(out, contribution{cStockout + "|" + p.ProductID, 1})
		}
	case "InventoryReserved":
		var p struct {
			Lines []struct {
				ProductID string `json:"productId"`
			} `json:"lines"`
			Levels []struct {
				ProductID string `json:"productId"`
				Available int64  `json:"available"`
			} `json:"levels"`
		}
		if json.Unmarshal(payload, &p) != nil {
			return out
		}
		for _, l := range p.Levels {
			if l.Available <= 0 {
				out = append(out, contribution{cStockout + "|" + l.ProductID, 1})
			}
		}
	}
	return out
}

// statsAggregator folds events into Counters, from the contributions the
// service decoded into Record.Decoded.
type statsAggregator struct{}

func (statsAggregator) Init() Counters { return Counters{} }

func (statsAggregator) Add(acc Counters, r *stream.Record) Counters {
	cs, _ := r.Decoded.([]contribution)
	for _, c := range cs {
		acc[c.name] += c.n
	}
	return acc
}

func (statsAggregator) Merge(a, b Counters) Counters {
	for k, v := range b {
		a[k] += v
	}
	return a
}

// Encode writes what json.Marshal writes (keys sorted), without its
// reflection: a commit encodes every open window it changed.
func (statsAggregator) Encode(v Counters) ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	keys := make([]string, 0, len(v))
	n := 2
	for k := range v {
		keys = append(keys, k)
		n += len(k) + 24
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.AppendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, v[k], 10)
	}
	return append(b, '}'), nil
}

func (statsAggregator) Decode(b []byte) (Counters, error) {
	var c Counters
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("analytics: counters: %w", err)
	}
	if c == nil {
		c = Counters{}
	}
	return c, nil
}

// Window is one window's figures as the API shows them.
type Window struct {
	Start string `json:"start"` // RFC 3339, UTC
	End   string `json:"end"`
	// Open: the window has not closed yet; its figures still grow.
	Open   bool             `json:"open"`
	Events int64            `json:"events"`
	Orders []CurrencyOrders `json:"orders"`
	// Revenue is what payments captured (PaymentProcessed).
	Revenue       []Money    `json:"revenue"`
	Funnel        Funnel     `json:"funnel"`
	Payments      Payments   `json:"payments"`
	Cancellations []Labelled `json:"cancellations"`
	TopProducts   []Labelled `json:"topProducts"` // by quantity ordered, at most TopN
	Stockouts     []Labelled `json:"stockouts"`   // products whose stock fell to zero, how often
	// OrderToShipped: the orders shipped in the window, time from order.
	OrderToShipped ShipTimes `json:"orderToShipped"`
}

// CurrencyOrders are the orders placed in one currency.
type CurrencyOrders struct {
	Currency          string `json:"currency"`
	Count             int64  `json:"count"`
	ValueCents        int64  `json:"valueCents"`
	AverageOrderCents int64  `json:"averageOrderCents"` // ValueCents / Count, rounded down
	PaidCount         int64  `json:"paidCount"`
	PaidAmountCents   int64  `json:"paidAmountCents"`
	AveragePaidCents  int64  `json:"averagePaidCents"`
}

// Money is a count and sum of payments in one currency.
type Money struct {
	Currency    string `json:"currency"`
	Count       int64  `json:"count"`
	AmountCents int64  `json:"amountCents"`
}

// Funnel counts carts created, orders placed, orders paid and orders
// shipped in the window, and each step's conversion from the step before
// (0 when the step before is 0).
type Funnel struct {
	Carts       int64   `json:"carts"`
	Orders      int64   `json:"orders"`
	Paid        int64   `json:"paid"`
	Shipped     int64   `json:"shipped"`
	CartToOrder float64 `json:"cartToOrder"`
	OrderToPaid float64 `json:"orderToPaid"`
	PaidToShip  float64 `json:"paidToShipped"`
	OrderToShip float64 `json:"orderToShipped"`
}

// Payments counts captured and declined payments; DeclineRate is
// declined / (captured + declined).
type Payments struct {
	Processed   int64      `json:"processed"`
	Declined    int64      `json:"declined"`
	DeclineRate float64    `json:"declineRate"`
	ByCode      []Labelled `json:"byCode"`
}

// Labelled is a count with a label (a reason, a product id).
type Labelled struct {
	Label string `json:"label"`
	Count int64  `json:"count"`
}

// TopN bounds a window's top products.
const TopN = 10

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// window shapes counters for the API.
func window(start, end time.Time, open bool, c Counters) Window {
	w := Window{Start: start.UTC().Format(time.RFC3339), End: end.UTC().Format(time.RFC3339), Open: open, Events: c[cEvents],
		Orders: []CurrencyOrders{}, Revenue: []Money{}, Cancellations: []Labelled{}, TopProducts: []Labelled{}, Stockouts: []Labelled{}}
	w.Payments.ByCode = []Labelled{}
	orders := map[string]*CurrencyOrders{}
	cur := func(c string) *CurrencyOrders {
		if o, ok := orders[c]; ok {
			return o
		}
		o := &CurrencyOrders{Currency: c}
		orders[c] = o
		return o
	}
	var ship map[int64]int64
	for k, v := range c {
		name, label, _ := strings.Cut(k, "|")
		switch name {
		case cShipDelay:
			if b, ok := shipBucketOf(label); ok {
				if ship == nil {
					ship = map[int64]int64{}
				}
				ship[b] += v
			}
		case cOrders:
			cur(label).Count = v
		case cOrderValue:
			cur(label).ValueCents = v
		case cPaid:
			cur(label).PaidCount = v
		case cRevenue:
			cur(label).PaidAmountCents = v
		case cFailed:
			w.Payments.Declined += v
			w.Payments.ByCode = append(w.Payments.ByCode, Labelled{label, v})
		case cCancelled:
			w.Cancellations = append(w.Cancellations, Labelled{label, v})
		case cProduct:
			w.TopProducts = append(w.TopProducts, Labelled{label, v})
		case cStockout:
			w.Stockouts = append(w.Stockouts, Labelled{label, v})
		case cFunnel:
			switch label {
			case "cart":
				w.Funnel.Carts = v
			case "order":
				w.Funnel.Orders = v
			case "paid":
				w.Funnel.Paid = v
			case "shipped":
				w.Funnel.Shipped = v
			}
		}
	}
	for _, o := range orders {
		if o.Count > 0 {
			o.AverageOrderCents = o.ValueCents / o.Count
		}
		if o.PaidCount > 0 {
			o.AveragePaidCents = o.PaidAmountCents / o.PaidCount
			w.Revenue = append(w.Revenue, Money{Currency: o.Currency, Count: o.PaidCount, AmountCents: o.PaidAmountCents})
		}
		w.Payments.Processed += o.PaidCount
		w.Orders = append(w.Orders, *o)
	}
	byCur := func(a, b CurrencyOrders) int { return strings.Compare(a.Currency, b.Currency) }
	slices.SortFunc(w.Orders, byCur)
	slices.SortFunc(w.Revenue, func(a, b Money) int { return strings.Compare(a.Currency, b.Currency) })
	byCount := func(a, b Labelled) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	}
	for _, l := range [][]Labelled{w.Payments.ByCode, w.Cancellations, w.TopProducts, w.Stockouts} {
		slices.SortFunc(l, byCount)
	}
	if len(w.TopProducts) > TopN {
		w.TopProducts = w.TopProducts[:TopN]
	}
	f := &w.Funnel
	f.CartToOrder, f.OrderToPaid, f.PaidToShip, f.OrderToShip = ratio(f.Orders, f.Carts), ratio(f.Paid, f.Orders), ratio(f.Shipped, f.Paid), ratio(f.Shipped, f.Orders)
	w.OrderToShipped = shipTimesOf(ship)
	w.Payments.DeclineRate = ratio(w.Payments.Declined, w.Payments.Processed+w.Payments.Declined)
	return w
}
