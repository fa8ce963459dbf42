package settings

// Every setting, in the order `eventmart config` and the README list them.
// A new setting is declared here (and in All), read through Values, and
// documented in README's Configuration table (TestREADMETable).

// The runtime: eventmart run and serve.
var (
	Bus = &Setting{Name: "EVENTMART_BUS", Flag: "bus", Kind: String, Default: "embedded", Scope: "runtime",
		Meaning: "event bus: embedded, or kafka://host:port[,host:port]"}
	Data = &Setting{Name: "EVENTMART_DATA", Flag: "data", Kind: String, Default: "./data", Scope: "runtime",
		Meaning: "data directory: the embedded log (eventlog.db), each service's SQLite file, the generated JWT secret and the built-in schema registry"}
	DB = &Setting{Name: "EVENTMART_DB", Flag: "db", Kind: String, Scope: "runtime",
		Meaning: "service databases: unset for SQLite files under --data, or postgres://user@host:port/PREFIX for one PostgreSQL database per service, named PREFIX_SERVICE (eventmart_SERVICE without a prefix), created if missing"}
	Addr = &Setting{Name: "EVENTMART_ADDR", Flag: "addr", Kind: String, Default: "127.0.0.1:8080", Scope: "runtime",
		Meaning: "HTTP listen address"}
	ReplicationFactor = &Setting{Name: "EVENTMART_REPLICATION_FACTOR", Flag: "replication-factor", Kind: Int, Min: 1, Max: 32767, Scope: "runtime",
		Meaning: "Kafka: replication factor of the topics created; unset: the broker's default.replication.factor"}
	MinInsyncReplicas = &Setting{Name: "EVENTMART_MIN_INSYNC_REPLICAS", Flag: "min-insync-replicas", Kind: Int, Min: 1, Max: 32767, Scope: "runtime",
		Meaning: "Kafka: min.insync.replicas of the topics created; unset: the broker's min.insync.replicas"}
	LogPartitions = &Setting{Name: "EVENTMART_LOG_PARTITIONS", Flag: "log-partitions", Kind: Int, Default: "1", Min: 1, Max: 1024, Scope: "runtime",
		Meaning: "embedded log: partitions of each topic it creates (at most ADR-0006's count; Kafka topics keep the ADR's). One process has one writer per database, so more partitions buy no parallelism and split each consumer's batches (more transactions per order); a topic keeps the partitions it has"}
	InstanceID = &Setting{Name: "EVENTMART_INSTANCE_ID", Flag: "instance-id", Kind: String, Scope: "runtime",
		Meaning: "Kafka: consumer-group instance id of this process (static membership), unique per service instance; unset: dynamic membership"}
	SessionTimeout = &Setting{Name: "EVENTMART_SESSION_TIMEOUT", Flag: "session-timeout", Kind: Duration, Default: "10s", Scope: "runtime",
		Meaning: "Kafka: consumer-group session timeout (Kafka clients' 45s would outlast the saga timeout). Services refuse to start with EVENTMART_SAGA_TIMEOUT below twice it"}
	KafkaCompression = &Setting{Name: "EVENTMART_KAFKA_COMPRESSION", Flag: "kafka-compression", Kind: String, Default: "snappy", Scope: "runtime",
		Meaning: "Kafka: codec of the record batches published: none, snappy, lz4, zstd or gzip (consumers read any). Compression costs CPU in the producer, the broker (which decompresses each batch to validate it) and every consumer group, and saves network and disk"}
	ServiceURLs = &Setting{Name: "EVENTMART_SERVICE_URLS", Kind: String, Scope: "runtime",
		Meaning: "for serve: where the services this process does not run listen, user=http://h:p,catalog=http://h:p,…; several instances of one service as order=http://h:p1|http://h:p2"}
	JWTSecret = &Setting{Name: "EVENTMART_JWT_SECRET", Kind: String, Secret: true, Scope: "runtime",
		Meaning: "HS256 secret shared by every process of a deployment (at least 32 bytes); unset: one generated into jwt.secret under --data"}
	TokenTTL = &Setting{Name: "EVENTMART_TOKEN_TTL", Kind: Duration, Default: "15m", Scope: "runtime",
		Meaning: "lifetime of access tokens; clients get new ones with their refresh token (POST /api/v1/auth/refresh)"}
	RefreshTTL = &Setting{Name: "EVENTMART_REFRESH_TTL", Kind: Duration, Default: "24h", Scope: "runtime",
		Meaning: "lifetime of a session from its login: its refresh token's, and how long ended sessions are remembered"}
	EmitVersions = &Setting{Name: "EVENTMART_EMIT_VERSIONS", Kind: List, Scope: "runtime",
		Meaning: "publish these event types at a prior version during a rolling upgrade, e.g. Type=v1 (see Schemas); a version before personal fields were sealed is refused"}
	RetryDelays = &Setting{Name: "EVENTMART_RETRY_DELAYS", Kind: Durations, Default: "1s,5s,30s,2m,10m", Scope: "runtime",
		Meaning: "waits of the delayed retries of a failing event before the dead-letter queue"}
	RetryAttempts = &Setting{Name: "EVENTMART_RETRY_ATTEMPTS", Kind: Int, Default: "8", Min: 1, Max: 1 << 30, Scope: "runtime",
		Meaning: "attempts in all of a failing event before the dead-letter queue"}
	InboxRetention = &Setting{Name: "EVENTMART_INBOX_RETENTION", Kind: Duration, Default: "720h", ZeroOK: true, Scope: "runtime",
		Meaning: "how long each service remembers the ids of the events it applied (processed_events), which make an event delivered again a duplicate; older ones are deleted hourly, and a replay hands on no record older than this unless told to (--reapply); 0: forever"}
	FailEvents = &Setting{Name: "EVENTMART_FAIL_EVENTS", Kind: List, Scope: "runtime",
		Meaning: "failure injection: the handlers service:EventType,… fail"}
	PprofAddr = &Setting{Name: "EVENTMART_PPROF_ADDR", Kind: String, Scope: "runtime",
		Meaning: "serve Go profiles on this address; unset: off"}
	LogLevel = &Setting{Name: "EVENTMART_LOG_LEVEL", Kind: Level, Default: "info", Scope: "runtime",
		Meaning: "debug, info, warn or error; logs are JSON on stderr"}
	OTLPEndpoint = &Setting{Name: "EVENTMART_OTLP_ENDPOINT", Kind: URL, Scope: "runtime",
		Meaning: "export traces over OTLP/HTTP to this base URL (/v1/traces is appended; docs/monitoring.md); unset: tracing off"}
	OTELEndpoint = &Setting{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Kind: URL, Scope: "runtime",
		Meaning: "OpenTelemetry's name for EVENTMART_OTLP_ENDPOINT, used when that is unset"}
	OTELTracesEndpoint = &Setting{Name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Kind: URL, Scope: "runtime",
		Meaning: "the full OTLP/HTTP traces URL; wins over both base URLs"}
	RegionRole = &Setting{Name: "EVENTMART_REGION_ROLE", Kind: String, Default: "primary", Scope: "runtime",
		Meaning: "primary, or standby: a warm standby region (docs/regions.md) whose database is a hot standby of the primary's; it serves reads and refuses writes (503), its consumers, relays and jobs held, until promoted (eventmart region failover)"}
	RegionPrimary = &Setting{Name: "EVENTMART_REGION_PRIMARY", Kind: URL, Scope: "runtime",
		Meaning: "for a standby: the primary region's gateway URL, named in the error that refuses a write; logins (POST /api/v1/auth/token, refresh, logout) are forwarded there"}
	PrometheusURL = &Setting{Name: "EVENTMART_PROMETHEUS_URL", Kind: URL, Scope: "runtime",
		Meaning: "base URL of a Prometheus that scrapes this deployment (deploy/prometheus): the console's charts then come from it, over up to 24h; unset: from the process's own last hour"}
	OTELServiceName = &Setting{Name: "OTEL_SERVICE_NAME", Kind: String, Scope: "runtime",
		Meaning: "service.name of the traces; unset: eventmart, eventmart-gateway or eventmart-SERVICE[+SERVICE…]"}
)

// The services.
var (
	AdminEmail = &Setting{Name: "EVENTMART_ADMIN_EMAIL", Flag: "admin-email", Kind: String, Scope: "user, cli",
		Meaning: "the admin account: the user service ensures it at start; the client commands log in with it"}
	AdminPassword = &Setting{Name: "EVENTMART_ADMIN_PASSWORD", Flag: "admin-password", Kind: String, Secret: true, Scope: "user, cli",
		Meaning: "the admin account's password"}
	TrustedProxies = &Setting{Name: "EVENTMART_TRUSTED_PROXIES", Kind: List, Default: "127.0.0.0/8,::1/128", Scope: "user",
		Meaning: "addresses (CIDR) of the proxies and gateways whose X-Forwarded-For names the client, for login throttling by client address"}
	SagaTimeout = &Setting{Name: "EVENTMART_SAGA_TIMEOUT", Kind: Duration, Default: "30s", Scope: "order",
		Meaning: "a PENDING order is cancelled (reason timeout) and compensated once this long has passed since the pipeline reached it — since an order placed after it was decided, or since the pipeline last decided any order while it waits its turn (docs/saga.md) — and the order service has read its inventory and payment events past that deadline"}
	SagaSweepInterval = &Setting{Name: "EVENTMART_SAGA_SWEEP_INTERVAL", Kind: Duration, Default: "1s", Scope: "order",
		Meaning: "how often PENDING orders are checked against the saga timeout"}
	OrderMaxPending = &Setting{Name: "EVENTMART_ORDER_MAX_PENDING", Kind: Int, Min: 0, Max: 1 << 30, Scope: "order",
		Meaning: "admission control: with this many orders PENDING (sagas not yet decided), POST /api/v1/orders answers 503 with Retry-After and stores nothing; 0: no limit; unset: 10 per second of EVENTMART_SAGA_TIMEOUT (300 at 30s: a quarter of the timeout at 45 orders/s, the slowest throughput measured, docs/saga.md)"}
	OrderMaxTotal = &Setting{Name: "EVENTMART_ORDER_MAX_TOTAL", Kind: Int, Default: "100000000", Min: 1, Max: 1 << 62, Scope: "order",
		Meaning: "the largest total of one order, in the currency's minor unit (cents); a larger order is refused (400)"}
	CartSweepInterval = &Setting{Name: "EVENTMART_CART_SWEEP_INTERVAL", Kind: Duration, Default: "1m", Scope: "cart",
		Meaning: "how often idle carts are looked for"}
	CartAbandonAfter = &Setting{Name: "EVENTMART_CART_ABANDON_AFTER", Kind: Duration, Default: "24h", Scope: "cart",
		Meaning: "idle time after which a non-empty cart is CartAbandoned"}
	CarrierDispatchAfter = &Setting{Name: "EVENTMART_CARRIER_DISPATCH_AFTER", Kind: Duration, ZeroOK: true, Scope: "shipping",
		Meaning: "simulated carrier: dispatch shipped orders this long after shipping; unset: no carrier, admins dispatch and deliver (POST /api/v1/shipments/{id}/dispatch, /deliver)"}
	CarrierDeliverAfter = &Setting{Name: "EVENTMART_CARRIER_DELIVER_AFTER", Kind: Duration, ZeroOK: true, Scope: "shipping",
		Meaning: "simulated carrier: deliver this long after dispatch; unset: EVENTMART_CARRIER_DISPATCH_AFTER"}
	CarrierTick = &Setting{Name: "EVENTMART_CARRIER_TICK", Kind: Duration, Default: "500ms", Scope: "shipping",
		Meaning: "how often the simulated carrier looks for parcels to move"}
	CatalogLinger = &Setting{Name: "EVENTMART_CATALOG_LINGER", Kind: Duration, Default: "100ms", ZeroOK: true, Scope: "catalog",
		Meaning: "how long the catalog's consumer lets a batch of inventory events wait for more (bus.Linger) before the stock levels shown are updated: one transaction per batch, not per event; 0: at once"}
	SMTPAddr = &Setting{Name: "EVENTMART_SMTP_ADDR", Kind: String, Scope: "notification",
		Meaning: "send notifications through this SMTP server (host:port); unset: keep them in the notification service's mailbox"}
	SMTPFrom = &Setting{Name: "EVENTMART_SMTP_FROM", Kind: String, Default: "eventmart@localhost", Scope: "notification",
		Meaning: "the sender address of notifications sent by SMTP"}
	SMTPUsername = &Setting{Name: "EVENTMART_SMTP_USERNAME", Kind: String, Scope: "notification",
		Meaning: "SMTP PLAIN authentication user; unset: no authentication"}
	SMTPPassword = &Setting{Name: "EVENTMART_SMTP_PASSWORD", Kind: String, Secret: true, Scope: "notification",
		Meaning: "SMTP PLAIN authentication password"}
	NotifyFailTemplates = &Setting{Name: "EVENTMART_NOTIFY_FAIL_TEMPLATES", Kind: List, Scope: "notification",
		Meaning: "failure injection: these notification templates fail, e.g. order-shipped"}
	NotificationLinger = &Setting{Name: "EVENTMART_NOTIFICATION_LINGER", Kind: Duration, Default: "100ms", ZeroOK: true, Scope: "notification",
		Meaning: "how long the notification service's consumer lets a batch of events wait for more (bus.Linger): one transaction per batch, not per event, an e-mail up to this much later; 0: at once"}
	CardKeys = &Setting{Name: "EVENTMART_CARD_KEYS", Kind: List, Secret: true, Scope: "payment",
		Meaning: "card vault keys (AES-256-GCM), ID:HEX,… with 64 hex digits each; the last encrypts, the others decrypt older cards, which are re-encrypted at start; unset: card-vault.keys under --data, generated at the first start (docs/security.md)"}
	WebhookAllow = &Setting{Name: "EVENTMART_WEBHOOK_ALLOW", Kind: List, Scope: "webhook",
		Meaning: "CIDRs webhook deliveries may reach although loopback, private, link-local or otherwise special (e.g. 127.0.0.1/32 for a local receiver); plain http:// URLs are allowed only to these; unset: public https only"}
	WebhookRetryDelays = &Setting{Name: "EVENTMART_WEBHOOK_RETRY_DELAYS", Kind: Durations, Default: "5s,5m,30m,2h,5h,10h,10h", Scope: "webhook",
		Meaning: "waits between a webhook delivery's attempts (each with up to 20% jitter; a longer Retry-After wins); after the last, the delivery is failed"}
	WebhookTimeout = &Setting{Name: "EVENTMART_WEBHOOK_TIMEOUT", Kind: Duration, Default: "15s", Scope: "webhook",
		Meaning: "how long one webhook attempt may take, connecting included"}
	WebhookDisableAfter = &Setting{Name: "EVENTMART_WEBHOOK_DISABLE_AFTER", Kind: Duration, Default: "120h", Scope: "webhook",
		Meaning: "an endpoint whose every attempt failed for this long is disabled (WebhookEndpointDisabled)"}
	WebhookWorkers = &Setting{Name: "EVENTMART_WEBHOOK_WORKERS", Kind: Int, Default: "32", Min: 1, Max: 4096, Scope: "webhook",
		Meaning: "endpoints delivered to at once (each endpoint's queue is sent one delivery at a time)"}
	WebhookLinger = &Setting{Name: "EVENTMART_WEBHOOK_LINGER", Kind: Duration, Default: "100ms", ZeroOK: true, Scope: "webhook",
		Meaning: "how long the webhook service's consumer lets a batch of events wait for more (bus.Linger) before queueing their deliveries: one transaction per batch, not per event; 0: at once"}
	ExportDir = &Setting{Name: "EVENTMART_EXPORT_DIR", Kind: String, Scope: "audit",
		Meaning: "scheduled export: every night the process running the audit service exports the previous day's events into DIR/YYYY-MM-DD as Parquet (see Batch); unset: off"}
	ExportAt = &Setting{Name: "EVENTMART_EXPORT_AT", Kind: Duration, Default: "1h", ZeroOK: true, Scope: "audit",
		Meaning: "when the scheduled export runs, after midnight UTC"}
	AuditLinger = &Setting{Name: "EVENTMART_AUDIT_LINGER", Kind: Duration, Default: "100ms", ZeroOK: true, Scope: "audit",
		Meaning: "how long the audit trail's consumer lets a batch of events wait for more (bus.Linger): one transaction and one block of the chain per batch, not per event; 0: at once"}
	AnalyticsRules = &Setting{Name: "EVENTMART_ANALYTICS_RULES", Kind: String, Scope: "analytics",
		Meaning: "pattern rules file (JSON, docs/stream-processing.md), loaded at start and again whenever it changes; unset: the rules last set with PUT /api/v1/analytics/rules, else the standard three"}
	AnalyticsOrderSLA = &Setting{Name: "EVENTMART_ANALYTICS_ORDER_SLA", Kind: Duration, Default: "24h", Scope: "analytics",
		Meaning: "the standard OrderSlaBreached rule: an order neither shipped nor cancelled this long after OrderCreated"}
	AnalyticsGrace = &Setting{Name: "EVENTMART_ANALYTICS_GRACE", Kind: Duration, Default: "250ms", ZeroOK: true, Scope: "analytics",
		Meaning: "how late (log time) an event may reach the analytics service and still count; a window's figures and a detection wait this long"}
	AnalyticsLinger = &Setting{Name: "EVENTMART_ANALYTICS_LINGER", Kind: Duration, Default: "100ms", ZeroOK: true, Scope: "analytics",
		Meaning: "how long the analytics engine's consumer lets a batch of events wait for more (bus.Linger): one transaction per batch, not per event; keep it below EVENTMART_ANALYTICS_GRACE; 0: at once"}
)

// The command line client: the commands that talk to a running Eventmart.
var (
	Target = &Setting{Name: "EVENTMART_TARGET", Flag: "target", Kind: URL, Default: "http://127.0.0.1:8080", Scope: "cli",
		Meaning: "the gateway URL of the running Eventmart that audit, dlq, webhooks, replay and load talk to"}
	Registry = &Setting{Name: "EVENTMART_REGISTRY", Flag: "registry", Kind: URL, Scope: "cli",
		Meaning: "for schema: a schema registry's Confluent-compatible API (Apicurio: http://host:port/apis/ccompat/v7, a running Eventmart: http://host:port/registry); unset: the built-in registry under --data"}
)

// All is every declared setting.
var All = []*Setting{
	Bus, Data, DB, Addr, LogPartitions, ReplicationFactor, MinInsyncReplicas, InstanceID, SessionTimeout, KafkaCompression,
	ServiceURLs, JWTSecret, TokenTTL, RefreshTTL, EmitVersions, RetryDelays, RetryAttempts, InboxRetention, FailEvents,
	PprofAddr, LogLevel, OTLPEndpoint, OTELEndpoint, OTELTracesEndpoint, RegionRole, RegionPrimary, PrometheusURL, OTELServiceName,
	AdminEmail, AdminPassword, TrustedProxies,
	SagaTimeout, SagaSweepInterval, OrderMaxPending, OrderMaxTotal, CartSweepInterval, CartAbandonAfter,
	CarrierDispatchAfter, CarrierDeliverAfter, CarrierTick, CatalogLinger,
	SMTPAddr, SMTPFrom, SMTPUsername, SMTPPassword, NotifyFailTemplates, NotificationLinger, CardKeys,
	WebhookAllow, WebhookRetryDelays, WebhookTimeout, WebhookDisableAfter, WebhookWorkers, WebhookLinger,
	ExportDir, ExportAt, AuditLinger,
	AnalyticsRules, AnalyticsOrderSLA, AnalyticsGrace, AnalyticsLinger,
	Target, Registry,
}
