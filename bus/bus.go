// Package bus is Eventmart's event bus: a partitioned, durable log with
// consumer groups. Two drivers implement it: bus/kafka on Apache Kafka
// (production) and bus/embedded on local disk (the default, one process).
//
// It is transport only: messages with keys, values and headers. Neither it
// nor a driver knows the event catalog; event/eventmsg turns envelopes into
// messages and back (a test keeps event and OpenTelemetry out of their
// imports).
//
// The interfaces are small on purpose. Their doc comments are contracts
// that every driver passes in the conformance suite, bus/bustest.
package bus

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// Header is a record header. Envelope fields travel as headers (see
// event/eventmsg) so routing needs no decoding; the bus itself gives no
// header a meaning.
type Header struct {
	Key   string
	Value []byte
}

// Message is one record of a topic.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header

	// Set by the bus: on Publish once the message is durable, and on every
	// consumed or read message. Timestamp has millisecond precision (as
	// Kafka's) and is the same on publish and consume.
	Partition int32
	Offset    int64
	Timestamp time.Time

	// Memo, set by a driver on a message it hands to several readers (the
	// embedded log's recent records), holds what they decode from it,
	// decoded once for all of them; nil otherwise. See Memo.
	Memo *Memo
}

// Memo is a value derived once from one message and shared by every
// reader of that message: event/eventmsg.DecodeRecord keeps the decoded
// envelope and payload there, so that the consumer groups reading a
// record decode it once per process rather than once each. The value must be treated as
// read-only, as the message is. A copy of the message (its fields changed
// or not) does not use the memo: it is the original's only.
type Memo struct {
	of   *Message
	once sync.Once
	v    any
	err  error
}

// NewMemo gives m a memo of its own (drivers call it).
func NewMemo(m *Message) {
	m.Memo = &Memo{of: m}
}

// Do returns what f derives from m, calling f only once for all callers
// when m is the message the memo belongs to, and every time otherwise (no
// memo, or a copy of the message). f must give the same result whenever
// it is called for the same message.
func (x *Memo) Do(m *Message, f func() (any, error)) (any, error) {
	if x == nil || x.of != m {
		return f()
	}
	x.once.Do(func() { x.v, x.err = f() })
	return x.v, x.err
}

// Header returns the value of the first header named key, or "".
func (m *Message) Header(key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Publisher appends messages to topics.
type Publisher interface {
	// Publish appends msgs and returns nil only once every one of them is
	// durable (Kafka: acknowledged by all in-sync replicas; embedded:
	// fsynced), setting their Partition, Offset and Timestamp.
	//
	// The partition is chosen by key with Kafka's murmur2 partitioner, so a
	// key maps to the same partition on both drivers. Messages with the same
	// key keep the order they have in msgs and across calls that do not
	// overlap. A nil key picks any partition.
	//
	// On error, some messages may have been written: publishing again is
	// safe because consumers are idempotent. Errors wrap ErrUnknownTopic for
	// a topic that does not exist and ctx.Err() on cancellation. Publish is
	// safe for concurrent use.
	Publish(ctx context.Context, msgs ...*Message) error
}

// Handler processes a batch of messages from one partition, in offset
// order, within one consumer group. The messages may share memory with the
// driver's buffers, and be the very messages other groups get (see
// Reader.Read): treat them as read-only and copy what outlives the call. Batches of different partitions are
// handled concurrently; batches of one partition never are.
//
// Returning nil consumes the whole batch: the bus commits the offset after
// its last message. Returning an error consumes nothing: after a backoff the
// batch (possibly grown) is handed over again, until the handler succeeds,
// the partition is revoked or the subscription ends. Handlers must therefore
// be idempotent; delivery is at least once.
//
// A graceful shutdown or rebalance lets the running call finish and commits
// it; a batch waiting in a retry backoff is dropped uncommitted (it is
// redelivered to whoever owns the partition next). ctx is cancelled only
// when the partition is lost without a graceful hand-over (the group
// session expired) or the bus is closed. On Kafka a call must end well
// within the group's rebalance timeout (60s): a member whose call outlasts
// it is evicted and its partitions are reassigned.
type Handler func(ctx context.Context, batch []*Message) error

// Subscriber consumes topics as a member of a consumer group.
type Subscriber interface {
	// Subscribe joins group, consumes topics and calls h with batches per
	// partition until ctx is cancelled, then leaves the group gracefully:
	// the current batches finish, their offsets are committed, partitions
	// are handed over. It returns nil after a cancellation, or an error
	// that stopped it: one wrapping ErrUnknownTopic, at once, when a topic
	// does not exist.
	//
	// Members of one group share the partitions; when a member joins or
	// leaves, partitions move only after their current batch is committed,
	// so a graceful rebalance neither skips nor repeats messages. A group
	// that has no committed offset starts at the earliest message unless
	// StartAtLatest is given.
	Subscribe(ctx context.Context, group string, topics []string, h Handler, opts ...SubscribeOption) error
}

// Reader reads partitions directly, outside any group: the base of replay.
// Each method fails with an error wrapping ErrUnknownTopic for a topic that
// does not exist.
type Reader interface {
	// Read returns up to max messages of topic's partition starting at
	// offset from, in order, and an empty slice at or beyond the end of the log. An
	// offset below the start of the log (deleted by retention) reads from
	// the start.
	//
	// The slice is the caller's, the messages are not: a driver may hand
	// the same *Message, and the same key, value and header bytes, to every
	// caller reading that record (the embedded log serves recent records
	// from memory to every consumer group). Callers must not modify them;
	// copy what is to be changed. Consumer groups' handlers see them too
	// (Handler: read-only).
	Read(ctx context.Context, topic string, partition int32, from int64, max int) ([]*Message, error)
	// Offsets returns the log start (first offset still kept) and end (next
	// offset to be written) of every partition of topic.
	Offsets(ctx context.Context, topic string) ([]PartitionOffsets, error)
	// OffsetAfter returns, per partition of topic, in Start the first
	// offset whose timestamp is at or after t, or the end offset if there is
	// none, and in End the end offset.
	OffsetAfter(ctx context.Context, topic string, t time.Time) ([]PartitionOffsets, error)
}

// EndLister is an optional capability, not part of Bus: the end offsets
// of several topics in one call — on Kafka one request per broker for them
// all, where Offsets takes a metadata and two offset requests per topic —
// for a reader that asks often (the analytics engine's idle pass, ten
// times a second under load). Both drivers have it; the conformance suite
// tests it on every driver that does.
type EndLister interface {
	// Ends returns, by topic then partition, the end offset (the next
	// offset to be written) of every partition of each of topics.
	// Unknown topics fail with ErrUnknownTopic.
	Ends(ctx context.Context, topics []string) (map[string]map[int32]int64, error)
}

// Ends returns what EndLister.Ends does, from r's Ends if it has one, else
// from Offsets topic by topic (a reader wrapping a driver, say).
func Ends(ctx context.Context, r Reader, topics []string) (map[string]map[int32]int64, error) {
	if el, ok := r.(EndLister); ok {
		return el.Ends(ctx, topics)
	}
	out := make(map[string]map[int32]int64, len(topics))
	for _, t := range topics {
		offs, err := r.Offsets(ctx, t)
		if err != nil {
			return nil, err
		}
		ends := make(map[int32]int64, len(offs))
		for _, o := range offs {
			ends[o.Partition] = o.End
		}
		out[t] = ends
	}
	return out, nil
}

// Follower is an optional capability, not part of Bus: following a whole
// topic outside any group as it grows, for state that every process keeps
// (the ended sessions). Both drivers have it; the conformance suite tests
// it on every driver that does.
type Follower interface {
	// Follow calls h with the messages of every partition of topic from
	// the first one at or after since on, then with each message appended
	// later, in offset order per partition, one call at a time, until ctx
	// ends; then it returns nil. Partitions added meanwhile are followed
	// too (Kafka: within a metadata refresh, a minute). It waits for
	// appends rather than polling: the embedded log wakes it on commit,
	// Kafka's broker holds its fetch until there is something to return,
	// so an idle follower costs next to nothing. A message may be handed
	// over twice after a fetch error; h must be idempotent. It fails,
	// wrapping ErrUnknownTopic, for a topic that does not exist — at once,
	// or when the topic it follows is deleted (the caller follows again,
	// from a time before the failure, to read the topic created anew).
	Follow(ctx context.Context, topic string, since time.Time, h func([]*Message)) error
}

// PartitionOffsets describes one partition's offsets. For OffsetAfter,
// Start holds the found offset.
type PartitionOffsets struct {
	Partition int32
	Start     int64
	End       int64
}

// TopicConfig is a topic's desired or actual configuration.
type TopicConfig struct {
	Name       string
	Partitions int32
	Retention  time.Duration // 0 or less: keep forever
}

// TopicChange is what EnsureTopics did or found about one topic.
type TopicChange struct {
	Topic  string
	Action string // "created", "partitions increased", "retention updated", "unchanged", "drift"
	Detail string
}

// Admin manages topics.
type Admin interface {
	// EnsureTopics creates missing topics and brings existing ones to the
	// given partitions and retention. It is idempotent: a second call
	// reports every topic "unchanged". It never shrinks partitions (Kafka
	// cannot); a topic with more partitions than asked reports "drift".
	EnsureTopics(ctx context.Context, topics []TopicConfig) ([]TopicChange, error)
	// Topics describes the topics that exist, sorted by name.
	Topics(ctx context.Context) ([]TopicConfig, error)
	// Lag reports, for every partition of each topic, the group's
	// committed offset and the partition's end offset, sorted by topic and
	// partition. A partition the group never committed counts from the log
	// start (Committed is -1), so its Lag is what it has yet to read.
	// Unknown topics fail with ErrUnknownTopic.
	Lag(ctx context.Context, group string, topics []string) ([]PartitionLag, error)
}

// PartitionLag is how far a consumer group is behind on one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64 // next offset the group will read; -1: never committed
	End       int64 // next offset to be written
	Lag       int64 // messages still to read: End - max(Committed, log start)
}

// ClusterHealth is what a driver running on a cluster of brokers reports
// about it, from the cluster's metadata. It is an optional capability, not
// part of Bus: the Kafka driver has a Health method returning it, the
// embedded log (one process, no brokers) has none. Its users declare the
// interface they need.
type ClusterHealth struct {
	Brokers                   int // brokers the cluster reports alive
	Partitions                int // partitions of every topic, internal ones included
	UnderReplicatedPartitions int // partitions with fewer in-sync replicas than replicas
	OfflinePartitions         int // partitions without a leader
}

// Bus is everything a driver provides.
type Bus interface {
	Publisher
	Subscriber
	Reader
	Admin
	// Close releases the driver's resources; call it after every
	// subscription has returned. After it every call of every method,
	// Close included, fails at once with an error wrapping ErrClosed.
	Close() error
}

// Errors returned (wrapped) by drivers; test with errors.Is. The
// conformance suite, bus/bustest, requires both of every driver.
var (
	ErrUnknownTopic = errors.New("bus: unknown topic")
	ErrClosed       = errors.New("bus: closed")
)

// StartPosition is where a group with no committed offset starts.
type StartPosition int

// Start positions.
const (
	Earliest StartPosition = iota
	Latest
)

// SubscribeConfig is the result of applying SubscribeOptions. Drivers read
// it; users set it through the options.
type SubscribeConfig struct {
	MaxBatch   int
	Start      StartPosition
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Linger     time.Duration
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*SubscribeConfig)

// MaxBatch sets the most messages handed to a handler at once; default 500.
func MaxBatch(n int) SubscribeOption {
	return func(c *SubscribeConfig) {
		if n > 0 {
			c.MaxBatch = n
		}
	}
}

// StartAtLatest makes a group without committed offsets start at the end of
// the log instead of the default, the earliest message.
func StartAtLatest() SubscribeOption {
	return func(c *SubscribeConfig) { c.Start = Latest }
}

// RetryBackoff sets the wait before a failed batch is handed over again: it
// starts at least (at least 1ms) and doubles up to most; default 50ms to 5s.
func RetryBackoff(least, most time.Duration) SubscribeOption {
	return func(c *SubscribeConfig) {
		c.MinBackoff = max(least, time.Millisecond)
		c.MaxBackoff = max(most, c.MinBackoff)
	}
}

// Linger lets a partition's batch wait for more records before it is
// handed over: the batch goes to the handler once MaxBatch records are
// there, or d after its first record was appended to the log (its
// Timestamp), whichever comes first. Time that record spent waiting
// elsewhere (behind a running call, in a fetch) counts, and the wait from
// when the consumer has it is never longer than d. Default 0: a batch is
// handed over as soon as one record is there. d of 0 or less is 0.
//
// It is for groups whose handlers pay per batch (a transaction, an fsync)
// and that nothing waits on: they trade up to d of latency for fewer,
// larger batches. Groups on a saga's path must not linger.
//
// A linger is cut short, not waited out, by the end of the subscription,
// a revoke and a lost partition: the records waiting are then neither
// handed over nor committed, so the partition's next owner (or the next
// subscription) gets them, as it gets a batch waiting in a retry backoff.
// A batch handed over again after a failure does not linger. On Kafka the
// group's fetches wait too (fetch.min.bytes, fetch.max.wait.ms), so the
// broker answers once per linger rather than once per record; an idle
// group then fetches once per linger too (up to 500ms), not every 500ms.
func Linger(d time.Duration) SubscribeOption {
	return func(c *SubscribeConfig) { c.Linger = max(d, 0) }
}

// NewSubscribeConfig applies opts over the defaults.
func NewSubscribeConfig(opts ...SubscribeOption) SubscribeConfig {
	c := SubscribeConfig{MaxBatch: 500, MinBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Backoff returns the wait before attempt n (1-based) of a failed batch.
func (c SubscribeConfig) Backoff(n int) time.Duration {
	d := c.MinBackoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// SortLag sorts lags by topic, then partition: the order Admin.Lag returns.
func SortLag(lags []PartitionLag) {
	slices.SortFunc(lags, func(a, b PartitionLag) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
}
