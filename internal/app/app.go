// Package app runs a set of services in one process: it opens each one's
// database, applies migrations, starts its outbox relay, its consumer group
// and its background work, and serves their HTTP APIs behind the gateway.
// `eventmart run` runs every service this way; `eventmart serve` a chosen
// few, with the others reached over HTTP.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventmart/eventmart/audit"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/asyncapi"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/console"
	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/eventstore"
	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/lease"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
	"github.com/eventmart/eventmart/user"
)

// Config says what to run and on what.
type Config struct {
	Bus      bus.Bus
	DataDir  string // SQLite files, when DB is ""
	DB       string // "" for SQLite, or a postgres:// URL (one database per service)
	Services []service.Def
	// Remote are the base URLs of services not run here, for the gateway
	// and for synchronous calls: one per instance of the service, requests
	// spread over them (gateway.Balancer).
	Remote   map[string][]*url.URL
	Tokens   *auth.Tokens
	Log      *slog.Logger
	Settings func(string) string // the environment Start parses the settings (internal/settings) from, once; nil: every default
	Now      func() time.Time    // default time.Now
	// Metrics are the app's Prometheus metrics, served at GET /metrics;
	// nil: a fresh set on a registry of its own.
	Metrics *obs.Metrics
	// Tracer records spans of HTTP requests, publishes and event handlers;
	// nil: tracing off (trace context received is still passed on).
	Tracer trace.TracerProvider
	// RegistryDir, if set, holds the built-in schema registry, served at
	// /registry (the Confluent-compatible API; reads public, writes admins
	// only).
	RegistryDir string
	// RegionWatch follows the role recorded in this region's Kafka
	// cluster (region.Watch), which overrides EVENTMART_REGION_ROLE once
	// set (eventmart region failover/failback); nil: no such record (the
	// embedded bus), and a standby role is refused.
	RegionWatch func(ctx context.Context, fn func(region.State)) error
	// RegionLag measures replication lag while the region is a standby
	// (region.Lag.Run), until it is promoted; nil: not measured.
	RegionLag func(ctx context.Context) error
	// RegionLagSummary is the lag RegionLag measured (region.Lag.Summary)
	// and RegionCluster reads the replication state of this region's
	// Kafka cluster (region.ReadReplication), for GET /api/v1/admin/region;
	// nil: not measured, no cluster (the embedded bus).
	RegionLagSummary func() []region.TopicLag
	RegionCluster    func(ctx context.Context) (region.Replication, error)
	// NoConsoleSamples leaves out the console's chart sampler (the samples
	// of GET /api/v1/admin/samples stay empty): for a process behind a
	// gateway, which serves the console's paths itself. Every sample asks
	// the bus for every group's lag and every topic's offsets, so a
	// sampler in each of a deployment's processes multiplied the broker's
	// requests for charts nobody reads.
	NoConsoleSamples bool
}

// App is a running set of services.
type App struct {
	cfg       Config
	handler   http.Handler
	local     http.Handler // the local services' routes, without the gateway
	dbs       []*sqldb.DB
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	errOnce   sync.Once
	err       error
	failed    chan struct{} // closed when err is set
	services  map[string]service.Service
	consumers map[string]*inbox.Consumer
	dbByName  map[string]*sqldb.DB
	console   *console.Console
	metrics   *obs.Metrics
	// remoteClients call the services in cfg.Remote.
	remoteClients map[string]*http.Client
	// injected are the handler failures of EVENTMART_FAIL_EVENTS.
	injected *inbox.FailureInjection
	// region holds back writes and work while the region is a standby.
	region *regionGate
	// nightly is the scheduled export, if this process runs it.
	nightly *export.Nightly
}

var platformMigrations = []sqldb.Migration{
	{Name: "platform-0001_outbox.sql", SQL: outbox.Migration},
	{Name: "platform-0002_processed_events.sql", SQL: inbox.Migration},
	{Name: "platform-0003_failures.sql", SQL: deadletter.Migration},
}

// Start starts the services of cfg. Stop it with Close.
func Start(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Settings == nil {
		cfg.Settings = func(string) string { return "" }
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.New(nil)
	}
	tracing := obs.NewTracing(cfg.Tracer)
	probes := &obs.Probes{Bus: cfg.Bus, Log: cfg.Log}
	values, err := settings.Parse(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if err := checkEmitPins(values.String(settings.EmitVersions)); err != nil {
		return nil, fmt.Errorf("app: %s: %w", settings.EmitVersions.Name, err)
	}
	pins, err := outbox.ParsePins(values.String(settings.EmitVersions))
	if err != nil {
		return nil, fmt.Errorf("app: %s: %w", settings.EmitVersions.Name, err)
	}
	injected, err := injectedFailures(values, cfg.Log)
	if err != nil {
		return nil, err
	}
	warnWidePermissions(cfg.Log, cfg.DataDir)
	role, err := region.ParseRole(values.String(settings.RegionRole))
	if err != nil {
		return nil, fmt.Errorf("app: %s: %w", settings.RegionRole.Name, err)
	}
	if role == region.Standby && cfg.RegionWatch == nil {
		return nil, fmt.Errorf("app: %s=standby needs a Kafka bus (replicated by MirrorMaker, see docs/regions.md)", settings.RegionRole.Name)
	}
	gate := &regionGate{primary: values.String(settings.RegionPrimary), log: cfg.Log, promoted: role == region.Primary}
	if gate.primary != "" {
		primary, err := url.Parse(gate.primary)
		if err != nil {
			return nil, fmt.Errorf("app: %s: %w", settings.RegionPrimary.Name, err)
		}
		gate.toPrimary = primaryProxy(primary)
	}
	gate.standby.Store(role == region.Standby)
	runCtx, cancel := context.WithCancel(context.Background())
	a := &App{cfg: cfg, cancel: cancel, services: map[string]service.Service{}, consumers: map[string]*inbox.Consumer{}, dbByName: map[string]*sqldb.DB{}, metrics: cfg.Metrics, remoteClients: map[string]*http.Client{},
		injected: injected, failed: make(chan struct{}), region: gate}
	a.console = &console.Console{Bus: cfg.Bus, Consumers: a.consumerGroups, Log: cfg.Log, Now: cfg.Now, Metrics: cfg.Metrics.Registry,
		Prometheus: values.String(settings.PrometheusURL)}
	// The console's charts: a bounded sample history, taken every 10s.
	if !cfg.NoConsoleSamples {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.console.RunSampler(runCtx)
		}()
	}
	for svc, urls := range cfg.Remote {
		a.remoteClients[svc] = &http.Client{Transport: obs.Transport(gateway.NewBalancer(urls, nil)), Timeout: 5 * time.Second}
	}
	mux := http.NewServeMux()
	localNames := map[string]bool{}
	for _, def := range cfg.Services {
		localNames[def.Name] = true
	}
	type started struct {
		def   service.Def
		svc   service.Service
		db    *sqldb.DB
		relay *outbox.Relay
		log   *slog.Logger
	}
	var all []started
	relays := map[string]*outbox.Relay{}
	// The keys of personal data are the user service's: none in a
	// deployment without one (tests of other services), where nothing is
	// sealed.
	var keys event.Keys
	if _, remote := cfg.Remote[user.Name]; remote || localNames[user.Name] {
		keys = &personalKeys{a: a, now: cfg.Now, cache: map[string]cachedKey{}}
	}
	for _, def := range cfg.Services {
		log := cfg.Log.With("service", service.Source(def.Name))
		db, err := sqldb.Open(ctx, def.Name, cfg.DB, cfg.DataDir)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", def.Name, err)
		}
		a.dbs = append(a.dbs, db)
		a.dbByName[def.Name] = db
		if err := registerDBCounters(cfg.Metrics.Registry, service.Source(def.Name), db); err != nil {
			a.Close()
			return nil, fmt.Errorf("app: metrics: %w", err)
		}
		migrations, err := sqldb.ReadMigrations(def.Migrations, "")
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", def.Name, err)
		}
		platform := platformMigrations
		if def.EventStore {
			platform = append(platform[:len(platform):len(platform)], sqldb.Migration{Name: "platform-0004_eventstore.sql", SQL: eventstore.Migration})
			if db.Dialect == sqldb.SQLite {
				platform = append(platform, sqldb.Migration{Name: "platform-0004a_eventstore_sqlite.sql", SQL: eventstore.SQLiteMigration})
			}
		}
		ms := append(platform, migrations...)
		standbyDB, err := db.InRecovery(ctx)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", def.Name, err)
		}
		if standbyDB {
			// A hot standby of the primary region's server: read-only, its
			// schema arrives with the data. Migrations the primary had not
			// applied run at promotion, before the held work starts.
			if role != region.Standby {
				a.Close()
				return nil, fmt.Errorf("app: %s: its database is a read-only hot standby but %s is %s: promote it first (eventmart region failover --db)", def.Name, settings.RegionRole.Name, role)
			}
			name, log := def.Name, cfg.Log.With("service", service.Source(def.Name))
			gate.hold(func() {
				if err := db.Migrate(runCtx, ms...); err != nil {
					a.goRun(log, "migrations at promotion", func() error { return fmt.Errorf("%s: %w", name, err) })
				}
			})
		} else if err := db.Migrate(ctx, ms...); err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", def.Name, err)
		}
		relay := outbox.NewRelay(db, cfg.Metrics.Publisher(cfg.Bus, tracing, service.Source(def.Name)), log)
		relay.Pin = func() map[event.Type]string { return pins }
		probes.Outboxes = append(probes.Outboxes, obs.OutboxProbe{Service: service.Source(def.Name), Backlog: relay.Backlog})
		svc, err := def.New(service.Deps{
			Standby: role == region.Standby, DB: db, Log: log, Tokens: cfg.Tokens, Outbox: relay, Now: cfg.Now,
			Call: a.client, BaseURL: a.baseURL, Settings: values, Metrics: cfg.Metrics.Registry, DataDir: cfg.DataDir, Bus: cfg.Bus, Keys: keys,
			Consumed: func(ctx context.Context, topics []string) (time.Time, error) {
				return inbox.ConsumedUntil(ctx, cfg.Bus, service.Source(def.Name), topics, cfg.Now)
			},
		})
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", def.Name, err)
		}
		svc.Routes(mux)
		a.services[def.Name] = svc
		relays[def.Name] = relay
		all = append(all, started{def, svc, db, relay, log})
	}
	a.adminRoutes(mux)
	// The local services' routes, behind token authentication and the
	// recording of security events. The gateway hands them the requests
	// for local services; it proxies the others to their processes, which
	// authenticate and record in turn.
	authenticate := func(h http.Handler) http.Handler { return cfg.Tokens.Authenticate(httpx.Error, h) }
	routed := obs.Routed(httpx.Unmatched(mux)) // names requests by route pattern for metrics and spans
	auditor, err := newSecurityAuditor(relays, cfg.Metrics.Registry)
	if err != nil {
		a.Close()
		return nil, err
	}
	services := auditor.wrap(authenticate, routed)
	a.local = httpx.Middleware(cfg.Log, "gateway", services)
	root := http.NewServeMux()
	// Prometheus metrics: unauthenticated, outside /api/v1 (see README,
	// Monitoring): expose the listener only where it is meant to be scraped.
	root.Handle("GET /metrics", cfg.Metrics.Handler())
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	root.HandleFunc("GET /readyz", a.ready)
	root.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(gateway.OpenAPI())
	})
	// The event-flow console's front end: public files; its data needs an admin.
	root.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
	root.Handle("GET /console/{file...}", console.Assets())
	root.HandleFunc("GET /favicon.ico", console.Favicon)
	root.HandleFunc("GET /api/v1/asyncapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(asyncapi.Document())
	})
	if cfg.RegistryDir != "" {
		st, err := registry.OpenStore(cfg.RegistryDir)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %w", err)
		}
		registerCatalog(st, cfg.Log)
		root.Handle("/registry/", authenticate(http.StripPrefix("/registry", registry.Handler(st, adminWrites))))
	}
	root.Handle("/", gateway.Handler(services, localNames, cfg.Remote))
	// Every response, health checks included, carries X-Correlation-ID;
	// every request is timed, counted and (with tracing on) has a span.
	a.handler = cfg.Metrics.Middleware(tracing, httpx.Middleware(cfg.Log, "gateway", checkQuery(obs.Routed(gate.refuseWrites(root)))))

	// The sessions ended on any instance (SessionsRevoked) are refused
	// here too; those of the last session lifetime are read before the
	// first request is served.
	if cfg.Bus != nil && cfg.Tokens != nil {
		sessions := &sessionWatcher{bus: cfg.Bus, tokens: cfg.Tokens, log: cfg.Log, now: cfg.Now}
		if err := sessions.catchUpRetrying(ctx); err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %w", err)
		}
		a.goRun(cfg.Log, "session watcher", func() error { return sessions.run(runCtx) })
	}
	for _, s := range all {
		// Every instance of a service consumes (its consumer group shares
		// the partitions out) and serves HTTP; the work that must not run
		// twice at once runs in the one instance holding the service's lease.
		var c *inbox.Consumer
		hs, err := inbox.ByType(s.svc.Handlers())
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("app: %s: %w", s.def.Name, err)
		}
		if len(hs) > 0 {
			c = &inbox.Consumer{Group: service.Source(s.def.Name), DB: s.db, Handlers: hs, Log: s.log, Committed: s.relay.Notify,
				Tracing: tracing, InjectedFailures: injected.For(s.def.Name)}
			if p, ok := s.svc.(inbox.Preparer); ok {
				c.Prepare = p.Prepare
			}
			if w, ok := s.svc.(inbox.Wanter); ok {
				c.Wants = w.Wants
			}
			if w, ok := s.svc.(inbox.TypeWanter); ok {
				c.WantsType = w.WantsType
			}
			_, c.OwnDeduplication = s.svc.(inbox.OwnDeduplication)
			_, c.EnvelopeOnly = s.svc.(inbox.EnvelopeReader)
			if s.def.Linger != nil {
				c.Linger = values.Duration(s.def.Linger)
			}
			c.Metrics = cfg.Metrics.Consumer(c.Group, c.Topics())
			probes.Groups = append(probes.Groups, obs.GroupProbe{Group: c.Group, Topics: c.Topics(), Depths: c.DeadLetters().Depths})
			c.RetryDelays, c.MaxAttempts = values.Durations(settings.RetryDelays), values.Int(settings.RetryAttempts)
			c.Retention = values.Duration(settings.InboxRetention)
			// In a standby every consumer waits: the read models arrive
			// with the replicated database (docs/regions.md).
			gate.hold(func() { a.goRun(s.log, "consumer", func() error { return subscribe(runCtx, cfg.Bus, c, s.log) }) })
			a.consumers[s.def.Name] = c
		}
		if ir, ok := s.svc.(service.InstanceRunner); ok {
			gate.hold(func() { a.goRun(s.log, "instance work", func() error { return ir.RunInstance(runCtx) }) })
		}
		l := &lease.Lease{DB: s.db, Name: service.Source(s.def.Name) + " background work", Log: s.log}
		nightly, err := a.nightlyExport(s.def.Name, values, s.log)
		if err != nil {
			a.Close()
			return nil, err
		}
		if nightly != nil {
			a.nightly = nightly
		}
		gate.hold(func() {
			a.goRun(s.log, "leased work", func() error {
				return l.Run(runCtx, func(ctx context.Context) error {
					jobs := []func(context.Context) error{s.relay.Run, s.svc.Run}
					if c != nil {
						jobs = append(jobs, func(ctx context.Context) error { return c.RunRetries(ctx, inbox.RetryPoll) }, c.RunPrune)
					}
					if nightly != nil {
						jobs = append(jobs, nightly.Run)
					}
					return runAll(ctx, jobs...)
				})
			})
		})
	}
	if cfg.RegionWatch != nil {
		a.goRun(cfg.Log, "region role watch", func() error { return gate.watch(runCtx, cfg.RegionWatch) })
	}
	if cfg.RegionLag != nil && role == region.Standby {
		// Replication ends at promotion: so does its measurement.
		lagCtx, stopLag := context.WithCancel(runCtx)
		gate.hold(stopLag)
		a.goRun(cfg.Log, "replication lag", func() error { return cfg.RegionLag(lagCtx) })
	}
	if err := cfg.Metrics.Registry.Register(gate.collector()); err != nil {
		a.Close()
		return nil, fmt.Errorf("app: metrics: %w", err)
	}
	if err := cfg.Metrics.Registry.Register(probes); err != nil {
		a.Close()
		return nil, fmt.Errorf("app: metrics: %w", err)
	}
	return a, nil
}

// nightlyExport returns the scheduled export (EVENTMART_EXPORT_DIR) if
// svc is the audit service and it is on, else nil. It runs with the audit
// service's leased work, so one instance runs it.
func (a *App) nightlyExport(svc string, values *settings.Values, log *slog.Logger) (*export.Nightly, error) {
	dir := values.String(settings.ExportDir)
	if svc != audit.Name || dir == "" {
		return nil, nil
	}
	n, err := export.NewNightly(a.cfg.Bus, dir, values.Duration(settings.ExportAt), log, a.cfg.Metrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return n, nil
}

// topicsVisibleWithin bounds how long a consumer waits at start for its
// topics to be known to the broker it asks.
const topicsVisibleWithin = 30 * time.Second

// subscribe runs c's consumer group until ctx ends. On a Kafka cluster
// whose topics were just created, the broker a consumer asks may not know
// them yet although another one already answered that they exist (metadata
// spreads asynchronously): an unknown topic at start is asked again, with
// growing pauses, for up to topicsVisibleWithin, instead of leaving the
// service running without its consumer.
func subscribe(ctx context.Context, b bus.Subscriber, c *inbox.Consumer, log *slog.Logger) error {
	deadline := time.Now().Add(topicsVisibleWithin)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := b.Subscribe(ctx, c.Group, c.Topics(), c.Handle, c.SubscribeOptions()...)
		if !errors.Is(err, bus.ErrUnknownTopic) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		log.Warn("topics not visible yet; subscribing again", "group", c.Group, "error", err, "retryIn", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// runAll runs jobs concurrently until all return; the first error cancels
// the others' context and is returned.
func runAll(ctx context.Context, jobs ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(jobs))
	for _, job := range jobs {
		go func() { errs <- job(ctx) }()
	}
	var first error
	for range jobs {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// registerCatalog registers the catalog's schemas in the built-in
// registry, so it holds what this binary produces and accepts. A schema
// the registry refuses is logged with the reasons (eventmart schema check
// says the same); it does not stop the start.
func registerCatalog(st *registry.Store, log *slog.Logger) {
	entries, err := registry.Catalog()
	if err != nil {
		log.Error("schema registry: catalog", "error", err)
		return
	}
	for _, e := range entries {
		if _, err := st.Register(e.Subject, string(e.Schema), "JSON"); err != nil {
			log.Error("schema registry: the catalog's schema is not registered", "subject", e.Subject, "error", err)
		}
	}
}

// adminWrites lets only admins change the built-in schema registry; the
// refusal is a registry error (401 without a token, 403 for others).
func adminWrites(r *http.Request) error {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		status := http.StatusForbidden
		if eventmart.ErrorCode(err) == eventmart.EUNAUTHORIZED {
			status = http.StatusUnauthorized
		}
		return &registry.Error{Status: status, Code: status, Msg: eventmart.ErrorMessage(err)}
	}
	return nil
}

// goRun runs fn until the app stops; an error from it stops the app.
func (a *App) goRun(log *slog.Logger, what string, fn func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := fn(); err != nil {
			log.Error(what+" stopped", "error", err)
			a.errOnce.Do(func() {
				a.err = fmt.Errorf("app: %s: %w", what, err)
				close(a.failed)
			})
			a.cancel()
		}
	}()
}

// Handler is the gateway: every route of every service, health endpoints.
func (a *App) Handler() http.Handler { return a.handler }

// Consumers returns the consumer of each local service that consumes
// events, by service name.
func (a *App) Consumers() map[string]*inbox.Consumer { return a.consumers }

// StopInjectingFailures ends the handler failures of EVENTMART_FAIL_EVENTS,
// as a restart without the setting would: tests deploy "the fix" with it.
func (a *App) StopInjectingFailures() { a.injected.Stop() }

// DB returns a local service's database by name, for tests.
func (a *App) DB(name string) *sqldb.DB { return a.dbByName[name] }

// EndStreams ends the console's open event streams: call it when the HTTP
// server shuts down (http.Server.RegisterOnShutdown), as a stream never
// ends by itself.
func (a *App) EndStreams() { a.console.EndStreams() }

// Metrics returns the app's metrics (their registry is what GET /metrics
// serves).
func (a *App) Metrics() *obs.Metrics { return a.metrics }

// Service returns a locally running service by name, for tests.
func (a *App) Service(name string) service.Service { return a.services[name] }

// Failed is closed when a consumer or a background job stopped with an
// error, which stops the others: the process must then exit (and be
// restarted) rather than go on serving HTTP without them. Close returns
// the error.
func (a *App) Failed() <-chan struct{} { return a.failed }

// Close stops background work and consumers (each finishing its batch),
// closes the databases, and returns the first error that stopped the app
// early. The bus is the caller's to close.
func (a *App) Close() error {
	a.cancel()
	a.wg.Wait()
	var errs []error
	for _, db := range a.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(append([]error{a.err}, errs...)...)
}

// ready answers 200 when every local database and the bus answer.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, db := range a.dbs {
		if err := db.Ping(ctx); err != nil {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "database %s: %v", db.Name, err))
			return
		}
	}
	if _, err := a.cfg.Bus.Topics(ctx); err != nil {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EUNAVAILABLE, "event bus: %v", err))
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// localBase is the base URL of in-process calls; the host is never dialled.
const localBase = "http://in-process"

func (a *App) baseURL(svc string) string {
	if urls, ok := a.cfg.Remote[svc]; ok {
		return urls[0].String()
	}
	return localBase
}

// client returns an HTTP client for synchronous calls to svc: straight into
// the local handler when svc runs here, over the network otherwise, spread
// over svc's instances.
func (a *App) client(svc string) *http.Client {
	if c, ok := a.remoteClients[svc]; ok {
		return c
	}
	return &http.Client{Transport: localTransport{a}, Timeout: 5 * time.Second}
}

// localTransport serves a request with the app's own handler, without a
// network round trip.
type localTransport struct{ a *App }

func (t localTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := newRecorder(r)
	// The call is part of the caller's request (its trace), not its route.
	r = r.WithContext(obs.WithoutRoute(r.Context()))
	t.a.local.ServeHTTP(rec, r)
	return rec.result(), nil
}

// registerDBCounters exports a service's database counters (sqldb.Stats):
// statements run in write transactions, their round trips and commits,
// what a batch or an order costs the database (docs/benchmarks.md).
func registerDBCounters(reg prometheus.Registerer, svc string, db *sqldb.DB) error {
	labels := prometheus.Labels{"service": svc}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventmart_db_statements_total", ConstLabels: labels,
			Help: "Statements a service ran in write transactions (savepoints included)."},
			func() float64 { return float64(db.Stats().Statements) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventmart_db_commits_total", ConstLabels: labels,
			Help: "Write transactions a service committed (a SQLite group commit counts once)."},
			func() float64 { return float64(db.Stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventmart_db_round_trips_total", ConstLabels: labels,
			Help: "Round trips of the statements of write transactions: statements less those sent with another (PostgreSQL savepoints and rows sent with the next statement or the COMMIT)."},
			func() float64 { return float64(db.Stats().RoundTrips) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventmart_db_transactions_run_again_total", ConstLabels: labels,
			Help: "Write transactions a service ran again: a lost deadlock or serialization conflict, or a version conflict of appends at commit (contention)."},
			func() float64 { return float64(db.Stats().RunAgain) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// checkEmitPins refuses, with the reason, a pin of EVENTMART_EMIT_VERSIONS
// to a version that the current one is never downcast to
// (event.Spec.CheckEmit): OrderCreated and ShippingCreated before their
// personal fields were sealed. Other mistakes are outbox.ParsePins's.
func checkEmitPins(list string) error {
	for _, part := range strings.Split(list, ",") {
		t, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		spec, known := event.Lookup(event.Type(t))
		if !ok || !known || spec.NewAt(v) == nil {
			continue
		}
		if err := spec.CheckEmit(v); err != nil {
			return err
		}
	}
	return nil
}
