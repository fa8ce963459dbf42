// Package service is the contract between a domain service and the
// process that runs it (internal/app): what a service gets (Deps) and
// what it offers (Service).
package service

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Deps is what the runtime hands a service.
type Deps struct {
	DB     *sqldb.DB     // the service's own database, migrated
	Log    *slog.Logger  // carries service=<name>
	Tokens *auth.Tokens  // verifies (and, for the user service, issues) tokens
	Outbox *outbox.Relay // Notify it after committing outbox rows
	Now    func() time.Time
	// Call returns a client for the synchronous API of another service
	// (by name, e.g. "catalog"): in one process it calls that service's
	// handler directly, between processes it goes over HTTP. Requests use
	// paths under /api/v1 as the gateway exposes them.
	Call func(service string) *http.Client
	// BaseURL is the URL prefix to use with Call's client for a service.
	BaseURL func(service string) string
	// Settings are the process's settings, parsed at start (declared in
	// internal/settings); nil holds every default.
	Settings *settings.Values
	// Metrics is where a service registers its own metrics (exported at
	// GET /metrics with the platform's); nil in tests that do not care.
	Metrics prometheus.Registerer
	// Consumed returns a time before which the service's consumer group
	// has consumed (handled and committed) every record of topics, all of
	// its instances together (inbox.ConsumedUntil): a timeout asks it
	// whether what it waits for may be in the log unread. nil: no bus.
	Consumed func(ctx context.Context, topics []string) (time.Time, error)
	// DataDir is the process's data directory (EVENTMART_DATA), where a
	// service keeps files such as generated keys; "" for none.
	DataDir string

	// Keys gives the keys that open the personal fields of events
	// (event.Personal.Open): the user service's, in this process or over
	// its internal API. nil in tests that read no personal field.
	Keys event.Keys

	// Bus is the process's event bus, for a service that consumes with
	// its own loop instead of Handlers (analytics commits its stream
	// engine's state with the offsets it consumed). nil: no bus.
	Bus bus.Bus

	// Standby: the process starts in a standby region
	// (EVENTMART_REGION_ROLE=standby, docs/regions.md), whose database is
	// a read-only replica of the primary region's: New must write nothing
	// (the data, accounts included, comes from the primary); its Run and
	// consumer start only once the region is promoted.
	Standby bool
}

// Def describes a service to the runtime.
type Def struct {
	Name       string // "catalog"; its database is catalog.db / eventmart_catalog
	Migrations fs.FS  // *.sql applied in name order
	// EventStore: the service keeps streams of domain events
	// (internal/eventstore); the runtime creates the store's tables
	// before the service's own migrations.
	EventStore bool
	// Linger, if set, is the setting of how long the service's consumer
	// group lets a partition's batch wait for more records (bus.Linger,
	// passed by the runtime through inbox.Consumer.Linger): for services
	// that pay a transaction per batch and that no saga step waits on.
	// nil (the saga's services): batches are handed over at once.
	Linger *settings.Setting
	New    func(Deps) (Service, error)
}

// Service is a running domain service.
type Service interface {
	// Routes registers the service's HTTP API (paths under /api/v1) on mux.
	Routes(mux *http.ServeMux)
	// Handlers returns its event handlers, one per event type, made with
	// inbox.On (the payload type names the event type); its consumer group
	// is "<name>-service". nil when it consumes nothing. The runtime turns
	// them into the consumer's map with inbox.ByType and refuses to start
	// on a type handled twice or missing from the catalog.
	Handlers() []inbox.Handler
	// Run does background work (timeouts, schedulers) until ctx is
	// cancelled, then returns nil. Services without any return at once.
	Run(ctx context.Context) error
}

// InstanceRunner is implemented by services with background work that
// every instance does, not only the one holding the service's lease (as
// Run): e.g. listening for the changes other instances commit.
type InstanceRunner interface {
	// RunInstance does it until ctx is cancelled, then returns nil.
	RunInstance(ctx context.Context) error
}

// Source is the envelope source of events emitted by service name.
func Source(name string) string { return name + "-service" }

// RequestOrigin is the origin of events caused directly by the HTTP request
// in ctx: its correlation id and the caller's user and session.
func RequestOrigin(ctx context.Context) event.Origin {
	var md event.Metadata
	if id, ok := auth.FromContext(ctx); ok {
		md = event.Metadata{UserID: id.UserID, SessionID: id.SessionID}
	}
	return event.FromRequest(httpx.CorrelationID(ctx), md)
}

// Every calls fn every interval until ctx is cancelled, then returns nil.
// An error from fn is logged as "<what> failed" and fn runs again at the
// next tick: a failed sweep is no reason to stop a service.
func (d Deps) Every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				d.Log.Error(what+" failed; retrying at the next tick", "error", err)
			}
		}
	}
}

// Projection is a read model a service builds from events alone, kept in
// one table, which can therefore be rebuilt from scratch: the runtime
// creates a fresh table, applies every event of Topics to it (from the
// audit archive where retention deleted them, then from the topics),
// swaps it in for the live table in one transaction, and applies the
// events that arrived meanwhile once more.
type Projection struct {
	Name   string   // for messages, e.g. "availability"
	Table  string   // the live table
	Create string   // CREATE TABLE statement with %s for the table name
	Topics []string // the topics it is built from
	// Apply applies one event to the projection's table named table,
	// within tx; events it does not use change nothing. It must be
	// idempotent and independent of the order of events on different
	// partitions (keep the newest version, say): around the swap some
	// events are applied twice.
	Apply func(ctx context.Context, tx *sqldb.Tx, table string, e *event.Envelope, p event.Payload) error
	// Swapped, when set, is called in the transaction that swaps the
	// rebuilt table in, after the swap: a service that remembers what the
	// live table held forgets it there, once tx commits (tx.OnCommit), and
	// tells its other instances.
	Swapped func(ctx context.Context, tx *sqldb.Tx) error
	// Rebuild, when set, rebuilds the projection from the service's own
	// event store instead (Topics, Create and Apply unused): a projection
	// of domain event streams updated inline, in the transaction of every
	// append, is rebuilt by folding the streams again — live, in one
	// transaction that holds off the writers of the table meanwhile. It
	// returns the number of events read.
	Rebuild func(ctx context.Context, db *sqldb.DB) (int64, error)
}

// Projector is implemented by services that have projections.
type Projector interface {
	Projections() []Projection
}
