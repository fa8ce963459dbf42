// Package kafka is the bus driver for Apache Kafka, built on franz-go. It is
// the production driver: bus.Bus over a real cluster, passing the same
// conformance suite (bus/bustest) as the embedded driver.
//
// One Bus holds one franz-go client for publishing, reading and topic
// administration; every Subscribe call adds a client of its own, which is one
// member of its consumer group.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/eventmart/eventmart/bus"
)

// Option configures Open.
type Option func(*config)

type config struct {
	replicationFactor int16
	minISR            int
	clientID          string
	instanceID        string
	sessionTimeout    time.Duration
	logger            *slog.Logger
	clientLogs        bool
	clientOpts        []kgo.Opt
	metrics           prometheus.Registerer
	compressionName   string // "": franz-go's default, snappy
}

// ReplicationFactor sets the replication factor of the topics EnsureTopics
// creates. The default, -1, is the broker's default.replication.factor.
func ReplicationFactor(n int16) Option { return func(c *config) { c.replicationFactor = n } }

// MinInsyncReplicas sets min.insync.replicas on the topics EnsureTopics
// creates: how many replicas must have a message before Publish succeeds.
// By default it is not set, so the broker's default applies. Existing topics
// are not changed.
func MinInsyncReplicas(n int) Option { return func(c *config) { c.minISR = n } }

// ClientID sets the client id the bus's Kafka clients send to brokers (for
// quotas and broker logs); default "eventmart".
func ClientID(id string) Option { return func(c *config) { c.clientID = id } }

// InstanceID makes every consumer-group member this bus creates a static
// member with this group instance id (Kafka's group.instance.id, KIP-345):
// a member that restarts with the same id within the session timeout gets
// its partitions back without a rebalance of the group. Each process of a
// group needs its own id ("order-1", "order-2"); two live members with the
// same id fence each other. A static member does not leave its group when it
// stops: its partitions wait for it until the session timeout
// (SessionTimeout) expires. Empty (the default) means dynamic membership.
func InstanceID(id string) Option { return func(c *config) { c.instanceID = id } }

// DefaultSessionTimeout is the session timeout of a bus opened without
// SessionTimeout: franz-go's default.
const DefaultSessionTimeout = 45 * time.Second

// SessionTimeout sets how long the group coordinator waits for a silent
// member (one that crashed, or a static member that stopped) before it
// hands the member's partitions to the others; 0 keeps
// DefaultSessionTimeout. The broker bounds it
// (group.min/max.session.timeout.ms).
func SessionTimeout(d time.Duration) Option { return func(c *config) { c.sessionTimeout = d } }

// Compression sets the codec of the record batches the bus publishes:
// "snappy" (the default, franz-go's), "lz4", "zstd", "gzip" or "none".
// Consumers read any codec whatever this says. A compressed batch costs
// the producer its compression and every reader its decompression, the
// broker included, which decompresses each batch it is sent to validate
// it; it saves network and disk in proportion to how well the batch
// compresses, which small batches of small records do poorly. Open
// fails on another name.
func Compression(codec string) Option {
	return func(c *config) { c.compressionName = codec }
}

// compressionCodecs are the codecs Compression accepts, by name.
var compressionCodecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(),
	"zstd": kgo.ZstdCompression(), "gzip": kgo.GzipCompression(),
}

// Logger sets where the driver logs: its own warnings (handler failures,
// failed commits, fetch errors) and franz-go's client log. By default the
// driver logs to slog.Default() and franz-go logs nothing; Logger(nil)
// silences both.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.logger, c.clientLogs = l, true }
}

// ClientOptions appends franz-go options to every client the bus creates,
// for what this package does not wrap: TLS, SASL, timeouts. Options that
// change delivery (acks, idempotency, partitioner, group balancers) break
// the bus contract; do not pass them.
func ClientOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

// Metrics registers franz-go's client metrics (plugin kprom: connections,
// bytes and records produced and fetched, request latencies, buffered
// records) on reg, under the prefix eventmart_kafka_client_, with a label
// client naming each of the bus's clients: "shared" (publishing, reading,
// admin) and "group:<group>" per subscription.
func Metrics(reg prometheus.Registerer) Option { return func(c *config) { c.metrics = reg } }

// Bus is the Kafka driver. It implements bus.Bus; its methods are safe for
// concurrent use.
type Bus struct {
	cfg  config
	log  *slog.Logger
	base []kgo.Opt    // options every client of this bus starts from
	cl   *kgo.Client  // publishing, reading and admin
	adm  *kadm.Client // over cl

	// ctx is cancelled by Close: it stops subscriptions and cancels their
	// handlers' contexts.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	subs    sync.WaitGroup // running Subscribe calls
	clients map[string]int // metrics clients by label, for unique labels
}

// metricsOpts returns the option hooking a new client's kprom metrics,
// labelled client=name (made unique), or nothing without Metrics.
func (b *Bus) metricsOpts(name string) []kgo.Opt {
	if b.cfg.metrics == nil {
		return nil
	}
	b.mu.Lock()
	if b.clients == nil {
		b.clients = map[string]int{}
	}
	b.clients[name]++
	if n := b.clients[name]; n > 1 {
		name = fmt.Sprintf("%s#%d", name, n)
	}
	b.mu.Unlock()
	return []kgo.Opt{kgo.WithHooks(ClientMetrics(b.cfg.metrics, name))}
}

// ClientMetrics returns the kprom hook (kgo.WithHooks) of one client's
// metrics, named eventmart_kafka_client_*, labelled client=name, and
// registered on reg when the client is created. Names must be unique per
// registry.
func ClientMetrics(reg prometheus.Registerer, name string) *kprom.Metrics {
	return kprom.NewMetrics("eventmart_kafka", kprom.Subsystem("client"), kprom.Registerer(reg),
		kprom.WithStaticLabel(prometheus.Labels{"client": name}),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Batches, kprom.Records, kprom.UncompressedBytes, kprom.ConsistentNaming))
}

var _ bus.Bus = (*Bus)(nil)

// Open connects to the cluster at the bootstrap brokers ("host:port") and
// returns a bus on it. It fails unless one of them answers (each is tried
// once, within ctx). Close the bus when done.
func Open(ctx context.Context, brokers []string, opts ...Option) (*Bus, error) {
	if len(brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	cfg := config{replicationFactor: -1, clientID: "eventmart", logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	producer := producerOpts()
	if cfg.compressionName != "" {
		codec, ok := compressionCodecs[cfg.compressionName]
		if !ok {
			return nil, fmt.Errorf("kafka: compression %q: want none, snappy, lz4, zstd or gzip", cfg.compressionName)
		}
		producer = append(producer, kgo.ProducerBatchCompression(codec))
	}
	b := &Bus{cfg: cfg, log: cfg.logger}
	b.base = []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(cfg.clientID)}
	if cfg.clientLogs {
		b.base = append(b.base, kgo.WithLogger(kslog.New(cfg.logger)))
	}
	b.base = append(b.base, cfg.clientOpts...)

	cl, err := kgo.NewClient(slices.Concat(b.base, producer, b.metricsOpts("shared"))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: connect to %s: %w", strings.Join(brokers, ","), err)
	}
	b.cl, b.adm = cl, kadm.NewClient(cl)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// producerOpts configures the shared client's producer.
//
// Durability comes from franz-go's defaults, which are deliberately not
// overridden: acks=all (a publish is acknowledged by every in-sync replica)
// and the idempotent producer (broker-side retries never duplicate or
// reorder a partition's messages).
func producerOpts() []kgo.Opt {
	return []kgo.Opt{
		// Kafka's murmur2 partitioner for keyed records, as bus.PartitionFor;
		// records without a key stick to one partition per batch.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// Publish waits for its records anyway and, through ProduceSync,
		// flushes them once all are buffered, so the linger never delays a
		// Publish; it only keeps the first records of a large Publish from
		// leaving in a small request of their own.
		kgo.ProducerLinger(10 * time.Millisecond),
		// Bounded memory: a Publish beyond these limits blocks until earlier
		// records are acknowledged.
		kgo.MaxBufferedRecords(10_000),
		kgo.MaxBufferedBytes(32 << 20),
		// A missing topic (auto-creation is off in production) fails the
		// publish after this many metadata refreshes that do not know it,
		// instead of retrying forever. A few tolerate the short window in
		// which a just-created topic is not yet known to every broker.
		kgo.UnknownTopicRetries(3),
	}
}

// Close closes the bus's client; running subscriptions (there should be
// none) are stopped and their handlers' contexts cancelled first. Later
// calls of any method fail with bus.ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.subs.Wait()
	b.cl.Close()
	return nil
}

var errClosed = fmt.Errorf("kafka: %w", bus.ErrClosed)

// alive returns errClosed after Close.
func (b *Bus) alive() error {
	if b.ctx.Err() != nil {
		return errClosed
	}
	return nil
}

// ParseURL returns the brokers of a bus URL "kafka://host:port[,host:port]",
// the form EVENTMART_BUS and --bus take.
func ParseURL(u string) ([]string, error) {
	rest, ok := strings.CutPrefix(u, "kafka://")
	if !ok {
		return nil, fmt.Errorf("kafka: URL %q does not start with kafka://", u)
	}
	if rest == "" {
		return nil, fmt.Errorf("kafka: URL %q names no broker", u)
	}
	brokers := strings.Split(rest, ",")
	for _, br := range brokers {
		host, port, err := net.SplitHostPort(br)
		if err != nil {
			return nil, fmt.Errorf("kafka: URL %q: broker %q: want host:port", u, br)
		}
		if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("kafka: URL %q: broker %q: want host:port with a port from 1 to 65535", u, br)
		}
	}
	return brokers, nil
}

// isUnknownTopic reports whether err is Kafka's "this topic does not exist".
func isUnknownTopic(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// unknownTopic wraps a Kafka unknown-topic error so that errors.Is finds
// bus.ErrUnknownTopic as well as the Kafka error.
func unknownTopic(op, topic string, err error) error {
	return fmt.Errorf("kafka: %s %s: %w (%w)", op, topic, bus.ErrUnknownTopic, err)
}
