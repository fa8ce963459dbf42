package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/obs"
	"github.com/eventmart/eventmart/internal/region"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
)

// runCmd runs every service and the gateway in one process on the
// configured bus (the embedded log by default) until SIGINT or SIGTERM.
func runCmd(ctx context.Context, env *Env, args []string) error {
	var cfg Config
	pos, err := parseFlags(env, "run", args, &cfg, runtimeFlags)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("run: unexpected arguments %v", pos)}
	}
	return serve(ctx, env, cfg, allServices(), true)
}

// serveCmd runs the named services (and/or "gateway") in one process;
// services not named are reached at EVENTMART_SERVICE_URLS.
func serveCmd(ctx context.Context, env *Env, args []string) error {
	var cfg Config
	names, err := parseFlags(env, "serve", args, &cfg, runtimeFlags)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usageError{"serve: name at least one of: gateway, " + strings.Join(serviceNames(), ", ")}
	}
	byName := map[string]service.Def{}
	for _, d := range allServices() {
		byName[d.Name] = d
	}
	var defs []service.Def
	gw := false
	for _, name := range names {
		if name == "gateway" {
			gw = true
			continue
		}
		d, ok := byName[name]
		if !ok {
			return usageError{fmt.Sprintf("serve: unknown service %q (want gateway, %s)", name, strings.Join(serviceNames(), ", "))}
		}
		defs = append(defs, d)
	}
	return serve(ctx, env, cfg, defs, gw)
}

func serviceNames() []string {
	var names []string
	for _, d := range allServices() {
		names = append(names, d.Name)
	}
	return names
}

// serve runs defs behind the gateway on cfg.Addr until ctx is cancelled;
// with registry, the built-in schema registry (under cfg.Data) is served at
// /registry.
func serve(ctx context.Context, env *Env, cfg Config, defs []service.Def, registry bool) error {
	tuneGC(env.Getenv)
	remote, err := parseServiceURLs(env.Settings.String(settings.ServiceURLs))
	if err != nil {
		return usageError{err.Error()}
	}
	for _, d := range defs {
		delete(remote, d.Name) // a service run here is never proxied
	}
	if len(defs) > 0 {
		if err := checkGroupTimeouts(env, cfg); err != nil {
			return err
		}
	}
	tokens, err := loadTokens(env, cfg)
	if err != nil {
		return err
	}
	names := []string{}
	for _, d := range defs {
		names = append(names, d.Name)
	}
	locks, err := dataLocks(cfg, names)
	if err != nil {
		return err
	}
	defer releaseAll(locks)
	// Listen before starting anything, so that an address in use fails at
	// once and says which setting moves it.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w; pass another --addr (EVENTMART_ADDR)", cfg.Addr, err)
	}
	defer ln.Close() // after a clean shutdown, already closed by srv.Shutdown
	for _, l := range locks {
		if err := l.note(ln.Addr().String()); err != nil {
			return err
		}
	}
	metrics := obs.New(nil)
	b, err := openBus(ctx, cfg, metrics.Registry)
	if err != nil {
		return err
	}
	defer b.Close()
	tracer, shutdownTracing, err := obs.SetupOTLP(ctx, env.Getenv, processName(names))
	if err != nil {
		return usageError{err.Error()}
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(flushCtx); err != nil {
			env.Log.Warn("flushing traces failed", "error", err)
		}
	}()
	if err := ensureTopics(ctx, env, cfg, b); err != nil {
		return err
	}
	acfg := app.Config{
		Bus: b, DataDir: cfg.Data, DB: cfg.DB, Services: defs, Remote: remote,
		Tokens: tokens, Log: env.Log, Settings: env.Getenv, Metrics: metrics, Tracer: tracer,
		// The gateway serves the console (gateway.Console): only its
		// process samples the charts.
		NoConsoleSamples: !registry,
	}
	if registry {
		acfg.RegistryDir = cfg.Data
	}
	if strings.HasPrefix(cfg.Bus, "kafka://") {
		brokers, err := kafka.ParseURL(cfg.Bus)
		if err != nil {
			return usageError{err.Error()}
		}
		acfg.RegionWatch = func(ctx context.Context, fn func(region.State)) error { return region.Watch(ctx, brokers, fn) }
		lag, err := region.NewLag(metrics.Registry)
		if err != nil {
			return err
		}
		acfg.RegionLag = func(ctx context.Context) error {
			return lag.Run(ctx, brokers, append(replicatedTopics(), region.HeartbeatsTopic))
		}
		acfg.RegionLagSummary = lag.Summary
		// The console's Region tab reads the cluster's replication state
		// when asked (GET /api/v1/admin/region).
		cl, err := regionClient(cfg.Bus)
		if err != nil {
			return err
		}
		defer cl.Close()
		acfg.RegionCluster = func(ctx context.Context) (region.Replication, error) {
			return region.ReadReplication(ctx, cl, time.Now())
		}
	}
	a, err := app.Start(ctx, acfg)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(a.EndStreams) // open console streams would hold the shutdown up
	fmt.Fprintf(env.Stdout, "eventmart listening on http://%s (services: %s; bus: %s)\n", ln.Addr(), strings.Join(names, ","), busName(cfg))
	env.Log.Info("listening", "addr", ln.Addr().String(), "services", names, "bus", cfg.Bus, "data", cfg.Data)

	if addr := env.Settings.String(settings.PprofAddr); addr != "" {
		// Profiling stays off unless asked for, and on its own listener.
		go func() { env.Log.Warn("pprof server stopped", "error", http.ListenAndServe(addr, pprofMux())) }()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var runErr error
	select {
	case err := <-served:
		runErr = fmt.Errorf("serve: %w", err)
	case <-a.Failed():
		// A consumer or background job died: exit non-zero so that the
		// supervisor restarts the process, instead of serving without it.
		runErr = errors.New("serve: a consumer or background job stopped; see the error logged before")
		env.Log.Error("shutting down: a consumer or background job stopped")
	case <-ctx.Done():
		env.Log.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, fmt.Errorf("serve: shutdown: %w", err))
	}
	return errors.Join(runErr, a.Close())
}

// processName is the OpenTelemetry service.name of a process running
// services: "eventmart" for every service (eventmart run) or none (the
// gateway alone: eventmart-gateway), else eventmart-<service>[+<service>…].
func processName(services []string) string {
	switch {
	case len(services) == len(allServices()):
		return "eventmart"
	case len(services) == 0:
		return "eventmart-gateway"
	}
	return "eventmart-" + strings.Join(services, "+")
}

// ensureTopics creates or checks ADR-0006's topics. On a cluster whose
// topics were just created, a broker may not know them yet for a moment
// (metadata spreads asynchronously), so failures are retried for up to 30s.
func ensureTopics(ctx context.Context, env *Env, cfg Config, b bus.Bus) error {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		want, err := wantTopics(ctx, cfg, b)
		if err == nil {
			_, err = b.EnsureTopics(ctx, want)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("serve: topics: %w", err)
		}
		env.Log.Warn("topics not ready; retrying", "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// loadTokens uses EVENTMART_JWT_SECRET, or a secret kept in the data
// directory (created on first run), shared by processes using that directory.
func loadTokens(env *Env, cfg Config) (*auth.Tokens, error) {
	secret := []byte(env.Settings.String(settings.JWTSecret))
	if len(secret) == 0 {
		var err error
		if secret, err = auth.SecretFromFile(filepath.Join(cfg.Data, "jwt.secret")); err != nil {
			return nil, err
		}
	}
	t, err := auth.NewTokens(secret, env.Settings.Duration(settings.TokenTTL))
	if err != nil {
		return nil, err
	}
	t.SetRefreshTTL(env.Settings.Duration(settings.RefreshTTL))
	return t, nil
}

// parseServiceURLs parses "user=http://host:port,catalog=http://…", where a
// service with several instances has their URLs joined by "|":
// "order=http://h:8105|http://h:8115".
func parseServiceURLs(s string) (map[string][]*url.URL, error) {
	out := map[string][]*url.URL{}
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, raws, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !slices.Contains(serviceNames(), name) {
			return nil, fmt.Errorf("%s: %q: want service=http://host:port with a service among %s", settings.ServiceURLs.Name, part, strings.Join(serviceNames(), ", "))
		}
		for _, raw := range strings.Split(raws, "|") {
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%s: %s: %q is not an http(s) URL", settings.ServiceURLs.Name, name, raw)
			}
			out[name] = append(out[name], u)
		}
	}
	return out, nil
}

// pprofMux serves net/http/pprof's profiles under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// checkGroupTimeouts refuses to run services on Kafka with a saga timeout
// shorter than twice the consumer-group session timeout. A member that dies
// keeps its partitions for a session timeout, then the group rebalances and
// the new owner reads the backlog: if the payment or inventory service's
// group stalls that long, the order service's sweep cancels orders whose
// outcome is merely late (the order service's own stall is covered by the
// sweep itself, see docs/saga.md). Twice the session timeout leaves the
// rebalance and the backlog as much time again. It refuses rather than
// warns: the damage (orders charged, then refunded, their labels voided)
// falls on customers, and the fix is one setting. Without an instance id
// (dynamic membership) a restarted process waits out its predecessor's
// session every time: that is allowed, with a warning.
func checkGroupTimeouts(env *Env, cfg Config) error {
	if !strings.HasPrefix(cfg.Bus, "kafka://") {
		return nil
	}
	session := cfg.SessionTimeout
	if session <= 0 {
		session = kafka.DefaultSessionTimeout
	}
	saga := env.Settings.Duration(settings.SagaTimeout)
	if saga < 2*session {
		return usageError{fmt.Sprintf("%s=%s is less than twice the Kafka consumer-group session timeout (%s=%s): "+
			"a service instance that dies holds its partitions that long, and the order saga would time out orders that are only late. "+
			"Set %s to at most %s (with a stable %s per process), or %s to at least %s",
			settings.SagaTimeout.Name, saga, settings.SessionTimeout.Name, sessionSource(cfg, session),
			settings.SessionTimeout.Name, saga/2, settings.InstanceID.Name, settings.SagaTimeout.Name, 2*session)}
	}
	if cfg.InstanceID == "" {
		env.Log.Warn("no consumer-group instance id: dynamic membership, so a restarted process waits up to the session timeout before it reads again; give each process a stable one",
			"setting", settings.InstanceID.Name, "sessionTimeout", session)
	}
	return nil
}

// sessionSource names the session timeout in effect and where it comes from.
func sessionSource(cfg Config, session time.Duration) string {
	if cfg.SessionTimeout <= 0 {
		return session.String() + ", unset: franz-go's default"
	}
	return session.String()
}
