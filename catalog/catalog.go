// Package catalog is the catalog service: products, their prices, and their
// availability as last reported by inventory events.
//
// It owns the products table. Admins create, update and discontinue
// products (ProductCreated, ProductUpdated, ProductDiscontinued on
// catalog-events); every inventory event updates availability.
package catalog

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "catalog"

// Def describes the catalog service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, Linger: settings.CatalogLinger, New: func(d service.Deps) (service.Service, error) { return New(d) }}
}

// Product statuses.
const (
	StatusActive       = "active"
	StatusDiscontinued = "discontinued"
)

// Product is a catalog entry with its availability.
type Product struct {
	ID           string       `json:"id"`
	SKU          string       `json:"sku"`
	Name         string       `json:"name"`
	PriceCents   int64        `json:"priceCents"`
	Currency     string       `json:"currency"`
	Status       string       `json:"status"`
	Availability Availability `json:"availability"`
	CreatedAt    time.Time    `json:"createdAt"`
	UpdatedAt    time.Time    `json:"updatedAt"`
}

// Availability is the stock as inventory last reported it.
type Availability struct {
	OnHand    int64 `json:"onHand"`
	Reserved  int64 `json:"reserved"`
	Available int64 `json:"available"`
	InStock   bool  `json:"inStock"`
}

// Orderable reports whether the product can be ordered at all (stock aside).
func (p *Product) Orderable() bool { return p.Status == StatusActive }

// Service is the catalog service.
type Service struct {
	d     service.Deps
	store *store
	mem   memory // the products read by id (memory.go)
	// listening is set while RunInstance LISTENs for the writes of every
	// instance (PostgreSQL): memory is trusted only meanwhile.
	listening atomic.Bool
	// fromMemory and fromDatabase count the reads by id answered each way
	// (eventmart_catalog_product_reads_total).
	fromMemory, fromDatabase prometheus.Counter
}

// New returns the catalog service.
func New(d service.Deps) (*Service, error) {
	s := &Service{d: d}
	s.mem = newMemory(s.hearsEveryWrite, nil)
	s.store = &store{db: d.DB, mem: s.mem}
	reg := d.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exported
	}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "eventmart", Name: "catalog_product_reads_total",
		Help: "Reads of products by id (GET /api/v1/products?ids=, GET /api/v1/products/{id}) answered from the catalog's memory or from its database."},
		[]string{"from"})
	if err := reg.Register(reads); err != nil {
		return nil, fmt.Errorf("catalog: metrics: %w", err)
	}
	s.fromMemory, s.fromDatabase = reads.WithLabelValues("memory"), reads.WithLabelValues("database")
	return s, nil
}

// Run has no background work.
func (s *Service) Run(ctx context.Context) error { return nil }

// RunInstance, on PostgreSQL, LISTENs for the writes of the products and
// their availability committed by every instance of the service on the
// database (their statements notify changeChannel) and tells memory,
// until ctx is cancelled; memory is trusted from the moment the LISTEN
// took until the connection is lost. On SQLite, whose database one process
// owns, every write is this instance's: it returns at once.
func (s *Service) RunInstance(ctx context.Context) error {
	s.d.DB.Listen(ctx, changeChannel, sqldb.Listener{
		Listening: func() {
			s.listening.Store(true)
			// A write committed before the LISTEN took may have been
			// heard of by no one: memory starts empty, and reads in
			// flight are not remembered.
			s.mem.Reset()
		},
		Lost: func(err error, retryIn time.Duration) {
			s.listening.Store(false)
			s.mem.Reset()
			s.d.Log.Warn("catalog: not listening for the writes of other instances; products are read from the database meanwhile",
				"error", err, "retry_in", retryIn.String())
		},
		Notified: s.heard,
	})
	s.listening.Store(false)
	s.mem.Reset()
	return nil
}

// heard is told each notification of changeChannel (see there).
func (s *Service) heard(payload string) {
	if payload == "*" {
		s.mem.Reset()
		return
	}
	f := strings.Fields(payload)
	if len(f) == 5 {
		var n [4]int64
		var err error
		for i := range n {
			if n[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
				break
			}
		}
		if err == nil {
			s.mem.level(event.StockLevel{ProductID: f[0], Version: n[0], OnHand: n[1], Reserved: n[2], Available: n[3]})
			return
		}
	}
	if len(f) == 1 {
		s.mem.Forget(f[0])
		return
	}
	s.mem.Reset() // no payload of ours: forget rather than guess
}

// hearsEveryWrite reports whether every write of the products, by any
// instance, reaches memory: on SQLite (one process), or while this
// instance LISTENs on PostgreSQL.
func (s *Service) hearsEveryWrite() bool {
	return s.d.DB.Dialect != sqldb.Postgres || s.listening.Load()
}

// Handlers: every inventory event carries stock levels.
func (s *Service) Handlers() []inbox.Handler {
	return []inbox.Handler{
		inbox.On(s.onInventoryAdjusted),
		inbox.On(s.onInventoryReserved),
		inbox.On(s.onInventoryReleased),
	}
}

// Projections: the availability of products is a read model of
// inventory-events, rebuildable from scratch (eventmart replay catalog
// --rebuild).
func (s *Service) Projections() []service.Projection {
	return []service.Projection{{
		Name: "availability", Table: stockTable, Create: createStock,
		Topics: []string{string(event.TopicInventory)}, Apply: s.applyStock,
		Swapped: s.store.swapStock,
	}}
}

// ProductInput is the body of POST and PATCH /products. On PATCH absent
// fields keep their value.
type ProductInput struct {
	SKU        *string `json:"sku"`
	Name       *string `json:"name"`
	PriceCents *int64  `json:"priceCents"`
	Currency   *string `json:"currency"`
}

var (
	skuPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// MaxPriceCents bounds prices (ten million in major units).
const MaxPriceCents = 1_000_000_000

// apply validates in and applies it to p; create requires every field.
func (in ProductInput) apply(p *Product, create bool) error {
	if create && (in.SKU == nil || in.Name == nil || in.PriceCents == nil || in.Currency == nil) {
		return eventmart.Errorf(eventmart.EINVALID, "sku, name, priceCents and currency are required")
	}
	if in.SKU != nil {
		if !create && *in.SKU != p.SKU {
			return eventmart.Errorf(eventmart.EINVALID, "sku cannot change")
		}
		if !skuPattern.MatchString(*in.SKU) {
			return eventmart.Errorf(eventmart.EINVALID, "sku must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		p.SKU = *in.SKU
	}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || utf8.RuneCountInString(name) > 200 {
			return eventmart.Errorf(eventmart.EINVALID, "name must be 1-200 characters")
		}
		p.Name = name
	}
	if in.PriceCents != nil {
		if *in.PriceCents <= 0 || *in.PriceCents > MaxPriceCents {
			return eventmart.Errorf(eventmart.EINVALID, "priceCents must be between 1 and %d", MaxPriceCents)
		}
		p.PriceCents = *in.PriceCents
	}
	if in.Currency != nil {
		if !currencyPattern.MatchString(*in.Currency) {
			return eventmart.Errorf(eventmart.EINVALID, "currency must be an ISO 4217 code such as EUR or USD")
		}
		p.Currency = *in.Currency
	}
	return nil
}
