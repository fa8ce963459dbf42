// Package report computes business reports in batch, from exported files
// or from the log: the daily report finance reconciles with the books.
package report

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/eventmart/eventmart/event"
)

// Topics are the topics the daily report reads.
var Topics = []string{string(event.TopicOrder), string(event.TopicPayment), string(event.TopicShipping)}

// Daily is the report of the events whose event time is in [From, To).
// Amounts are in minor units (cents) of their currency.
type Daily struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Orders placed (OrderCreated), per currency, with their value, and how
	// many of them were confirmed in the period (OrderConfirmed).
	Orders []CurrencyOrders `json:"orders"`
	// Revenue is what payments captured (PaymentProcessed); Refunds what
	// was given back (PaymentRefunded), per currency.
	Revenue []Money `json:"revenue"`
	Refunds []Money `json:"refunds"`
	// Cancellations counts OrderCancelled by reason code.
	Cancellations []Count `json:"cancellations"`
	// TopProducts are the products ordered most (by quantity, then value)
	// in the orders placed, at most TopN.
	TopProducts []Product `json:"topProducts"`
	// Parcels counts shipments by what happened to them in the period.
	Parcels Parcels `json:"parcels"`
	Events  int64   `json:"events"` // events of the period read (each event id once)
}

// CurrencyOrders is the orders of one currency.
type CurrencyOrders struct {
	Currency   string `json:"currency"`
	Placed     int64  `json:"placed"`
	ValueCents int64  `json:"valueCents"`
	Confirmed  int64  `json:"confirmed"`
}

// Money is a count of payments and their sum in one currency.
type Money struct {
	Currency    string `json:"currency"`
	Count       int64  `json:"count"`
	AmountCents int64  `json:"amountCents"`
}

// Count is a number of events with one label.
type Count struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// Product is one product's share of the orders placed.
type Product struct {
	ProductID  string `json:"productId"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	Currency   string `json:"currency"`
	Quantity   int64  `json:"quantity"`
	ValueCents int64  `json:"valueCents"`
}

// Parcels counts shipment events.
type Parcels struct {
	Shipped    int64 `json:"shipped"`    // OrderShipped: orders whose parcel exists and whose customer was told
	Created    int64 `json:"created"`    // ShippingCreated: labels made
	Dispatched int64 `json:"dispatched"` // ShippingDispatched: picked up by the carrier
	Delivered  int64 `json:"delivered"`  // ShippingDelivered
	Cancelled  int64 `json:"cancelled"`  // ShippingCancelled
}

// TopN is how many products TopProducts lists.
const TopN = 10

// Builder accumulates events into a Daily report. Events outside [From, To)
// and event ids already seen (a re-imported or replayed record) are
// skipped, so the report counts what happened, once.
type Builder struct {
	from, to time.Time
	seen     map[string]struct{}
	orders   map[string]*CurrencyOrders
	revenue  map[string]*Money
	refunds  map[string]*Money
	cancels  map[string]int64
	products map[[2]string]*Product
	parcels  Parcels
	events   int64
}

// NewBuilder starts a report of [from, to).
func NewBuilder(from, to time.Time) *Builder {
	return &Builder{from: from, to: to, seen: map[string]struct{}{}, orders: map[string]*CurrencyOrders{},
		revenue: map[string]*Money{}, refunds: map[string]*Money{}, cancels: map[string]int64{}, products: map[[2]string]*Product{}}
}

// Add counts e if it belongs to the period. It fails on a payload that
// does not decode (see event.Envelope.Payload).
func (b *Builder) Add(e *event.Envelope) error {
	if e.Timestamp.Before(b.from) || !e.Timestamp.Before(b.to) {
		return nil
	}
	switch e.EventType {
	case "OrderCreated", "OrderConfirmed", "OrderCancelled", "OrderShipped", "PaymentProcessed", "PaymentRefunded",
		"ShippingCreated", "ShippingDispatched", "ShippingDelivered", "ShippingCancelled":
	default:
		return nil
	}
	if _, dup := b.seen[e.EventID]; dup {
		return nil
	}
	b.seen[e.EventID] = struct{}{}
	b.events++
	p, err := e.Payload()
	if err != nil {
		return fmt.Errorf("report: %s %s: %w", e.EventType, e.EventID, err)
	}
	switch p := p.(type) {
	case *event.OrderCreated:
		o := b.currency(p.Currency)
		o.Placed++
		o.ValueCents += p.TotalCents
		for _, l := range p.Lines {
			k := [2]string{l.ProductID, p.Currency}
			pr := b.products[k]
			if pr == nil {
				pr = &Product{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Currency: p.Currency}
				b.products[k] = pr
			}
			pr.Quantity += l.Quantity
			pr.ValueCents += l.Quantity * l.UnitPriceCents
		}
	case *event.OrderConfirmed:
		b.currency(p.Currency).Confirmed++
	case *event.OrderCancelled:
		b.cancels[p.ReasonCode]++
	case *event.PaymentProcessed:
		add(b.revenue, p.Currency, p.AmountCents)
	case *event.PaymentRefunded:
		add(b.refunds, p.Currency, p.AmountCents)
	case *event.OrderShipped:
		b.parcels.Shipped++
	case *event.ShippingCreated:
		b.parcels.Created++
	case *event.ShippingDispatched:
		b.parcels.Dispatched++
	case *event.ShippingDelivered:
		b.parcels.Delivered++
	case *event.ShippingCancelled:
		b.parcels.Cancelled++
	}
	return nil
}

func (b *Builder) currency(c string) *CurrencyOrders {
	o := b.orders[c]
	if o == nil {
		o = &CurrencyOrders{Currency: c}
		b.orders[c] = o
	}
	return o
}

func add(m map[string]*Money, currency string, cents int64) {
	x := m[currency]
	if x == nil {
		x = &Money{Currency: currency}
		m[currency] = x
	}
	x.Count++
	x.AmountCents += cents
}

// Report returns the report, every list in a stable order.
func (b *Builder) Report() *Daily {
	d := &Daily{From: b.from, To: b.to, Parcels: b.parcels, Events: b.events,
		Orders: []CurrencyOrders{}, Revenue: []Money{}, Refunds: []Money{}, Cancellations: []Count{}, TopProducts: []Product{}}
	for _, o := range b.orders {
		d.Orders = append(d.Orders, *o)
	}
	slices.SortFunc(d.Orders, func(a, b CurrencyOrders) int { return cmp.Compare(a.Currency, b.Currency) })
	for _, m := range b.revenue {
		d.Revenue = append(d.Revenue, *m)
	}
	slices.SortFunc(d.Revenue, func(a, b Money) int { return cmp.Compare(a.Currency, b.Currency) })
	for _, m := range b.refunds {
		d.Refunds = append(d.Refunds, *m)
	}
	slices.SortFunc(d.Refunds, func(a, b Money) int { return cmp.Compare(a.Currency, b.Currency) })
	for r, n := range b.cancels {
		d.Cancellations = append(d.Cancellations, Count{Reason: r, Count: n})
	}
	slices.SortFunc(d.Cancellations, func(a, b Count) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason)) })
	for _, p := range b.products {
		d.TopProducts = append(d.TopProducts, *p)
	}
	slices.SortFunc(d.TopProducts, func(a, b Product) int {
		return cmp.Or(cmp.Compare(b.Quantity, a.Quantity), cmp.Compare(b.ValueCents, a.ValueCents), cmp.Compare(a.ProductID, b.ProductID), cmp.Compare(a.Currency, b.Currency))
	})
	d.TopProducts = d.TopProducts[:min(len(d.TopProducts), TopN)]
	return d
}
