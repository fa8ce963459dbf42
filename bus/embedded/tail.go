package embedded

import (
	"sync"

	"github.com/eventmart/eventmart/bus"
)

// A topic's tails hold at most topicTailBytes between its partitions,
// and a partition's at least minTailBytes (tailBytesFor). 4 MiB holds about
// a thousand 1 KiB envelopes with their 15 headers and decoded envelope
// and payload (as tailSize counts them, 4.3 KB each): on the embedded
// log's default one partition per topic, about a second of order-events
// at 250 orders a second, so the eleven or so groups that read each
// record find it there as long as they keep within a second of the end;
// the nine topics hold at most 36 MiB. A group further behind reads from
// SQLite. (A log created with the ADR's 20 partitions per topic gets
// 200 KiB tails on order-events, 512 KiB on the smaller topics.)
const (
	topicTailBytes = 4 << 20
	minTailBytes   = 64 << 10
)

// defaultTailBytes is the tail of one partition of a single-partition
// topic.
const defaultTailBytes = topicTailBytes

// tailBytesFor returns the bound of each tail of a topic of parts
// partitions: fixed when the log was opened with one (tests), else the
// topic's share.
func (b *Bus) tailBytesFor(parts int32) int {
	if b.cfg.tailBytes > 0 {
		return b.cfg.tailBytes
	}
	return max(topicTailBytes/int(max(parts, 1)), minTailBytes)
}

// Per-record memory counted besides the record's bytes: the Message
// (slices, strings, offset, timestamp, memo pointer: about 140 bytes) and
// its ring slot; each Header (a string and a slice); the bus.Memo and the
// envelope and payload decoded into it (eventmsg.Record): their structs,
// and the envelope's strings and data, copied from the value and key, as
// their length again, the payload's as half the value's. (Measured for an
// OrderCreated of 775 bytes: 980 bytes for the envelope, 546 for the
// payload; counted: 1,131 and 643.)
const (
	tailEntryOverhead  = 160
	tailHeaderOverhead = 40
	tailMemoOverhead   = 576
)

// tail holds the most recent committed records of one partition in
// memory, [first, first+n), so that consumers reading near the end, which
// is nearly all of them, need no query: about eleven groups read every
// record of a business topic. The writer appends after a batch commits,
// never before, so a crash loses nothing the tail has served. The records
// are shared by every reader and never modified (see bus.Reader.Read), and
// so are the envelope and payload decoded from one (bus.Memo).
type tail struct {
	mu    sync.Mutex
	limit int            // byte bound, see defaultTailBytes
	ring  []*bus.Message // circular; grows by doubling, at most limit/tailEntryOverhead slots
	head  int            // index in ring of offset first
	n     int
	first int64
	bytes int // memory of the n records, as counted by tailSize
}

func newTail(limit int, end int64) *tail {
	return &tail{limit: limit, first: end}
}

// tailSize is the memory m takes in a tail.
func tailSize(m *bus.Message) int {
	n := tailEntryOverhead + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += tailHeaderOverhead + len(h.Value) // the name is shared with the publisher's
	}
	if m.Memo != nil {
		n += tailMemoOverhead + len(m.Key) + len(m.Value) + len(m.Value)/2
	}
	return n
}

// append adds m, the partition's next record, evicting the oldest records
// to stay within the bound. A record that does not fit alone, or one not
// next in line (the tail's view started elsewhere), empties the tail and
// restarts it after m.
func (t *tail) append(m *bus.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := tailSize(m)
	if m.Offset != t.first+int64(t.n) || size > t.limit {
		t.reset(m.Offset + 1)
		return
	}
	for t.n > 0 && t.bytes+size > t.limit {
		t.dropOldest()
	}
	if t.n == len(t.ring) {
		ring := make([]*bus.Message, max(2*len(t.ring), 16))
		for i := range t.n {
			ring[i] = t.ring[(t.head+i)%len(t.ring)]
		}
		t.ring, t.head = ring, 0
	}
	t.ring[(t.head+t.n)%len(t.ring)] = m
	t.n++
	t.bytes += size
}

func (t *tail) dropOldest() {
	m := t.ring[t.head]
	t.ring[t.head] = nil // let the collector have it once readers are done
	t.head = (t.head + 1) % len(t.ring)
	t.n--
	t.first++
	t.bytes -= tailSize(m)
}

// reset empties the tail; the next record it takes is end.
func (t *tail) reset(end int64) {
	clear(t.ring)
	t.head, t.n, t.bytes, t.first = 0, 0, 0, end
}

// trim drops the records below start (deleted by retention).
func (t *tail) trim(start int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.n > 0 && t.first < start {
		t.dropOldest()
	}
}

// read returns up to limit records from offset from (a negative limit: all)
// and true when the tail can answer: from is at or after its first record.
// At or past the end it answers with none, as the log would.
func (t *tail) read(from int64, limit int) ([]*bus.Message, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if from < t.first {
		return nil, false
	}
	skip := from - t.first
	if skip >= int64(t.n) || limit == 0 {
		return nil, true
	}
	k := t.n - int(skip)
	if limit > 0 {
		k = min(k, limit)
	}
	out := make([]*bus.Message, k)
	for i := range out {
		out[i] = t.ring[(t.head+int(skip)+i)%len(t.ring)]
	}
	return out, true
}

// frozen returns the copy of m that the tail keeps: key, value and header
// values in one buffer of their own, nil and empty as a read from SQLite
// returns them, so a read serves the same whichever answers it.
func frozen(m *bus.Message, topicName string) *bus.Message {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	c := &bus.Message{Topic: topicName, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp}
	if len(m.Key) > 0 { // SQLite gives an empty blob back as NULL: nil
		c.Key, buf = carve(buf, m.Key)
	}
	if len(m.Value) > 0 {
		c.Value, buf = carve(buf, m.Value)
	}
	if len(m.Headers) > 0 {
		c.Headers = make([]bus.Header, len(m.Headers))
		for i, h := range m.Headers {
			k := len(buf)
			buf = append(buf, h.Value...)
			c.Headers[i] = bus.Header{Key: h.Key, Value: buf[k:len(buf):len(buf)]} // never nil, as decodeHeaders
		}
	}
	bus.NewMemo(c) // the consumer groups reading c decode its envelope and payload once (eventmsg.DecodeRecord)
	return c
}
