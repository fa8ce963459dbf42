package export

import (
	"reflect"
	"strings"
	"time"
	"unicode"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/eventmart/eventmart/event"
)

// The columns of an exported Parquet file. Every file has the record's
// location and the envelope's fields, typed, and the payload as JSON:
//
//	topic, record_partition (int32), record_offset (int64), key,
//	published_at (timestamp ms: when the bus stored the record),
//	event_id, event_type, event_version, timestamp (timestamp µs, UTC: the
//	event time), source, correlation_id, causation_id, user_id, session_id
//	(metadata), data (JSON)
//
// and, per topic, typed columns derived from the event catalog: every
// top-level scalar field (string, integer, bool, time) of the current
// version of every event type published on the topic becomes an optional
// column data_<field in snake case>, set on the rows whose payload has it.
// Nested objects and lists (an order's lines, an address) stay in data
// only: a query reads them with the JSON functions of its engine. Two event
// types of a topic with a field of one name share its column; a field whose
// kind differs from the one already declared under that name gets none.
// record_partition and record_offset are not called partition and offset
// so that engines reading the partition=<p> directories as Hive partitions
// do not see two columns of one name.

// envelopeColumns are the leading columns, in order, as named in the files.
var envelopeColumns = []string{
	"topic", "record_partition", "record_offset", "key", "published_at",
	"event_id", "event_type", "event_version", "timestamp", "source",
	"correlation_id", "causation_id", "user_id", "session_id", "data",
}

// typedField is one typed payload column of a topic.
type typedField struct {
	column string // data_<snake>
	json   string // the payload's JSON name
	kind   fieldKind
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindBool
	kindTime
)

var timeType = reflect.TypeFor[time.Time]()

// topicLayout is how records of one topic become Parquet rows.
type topicLayout struct {
	schema *parquet.Schema
	fields []typedField
	// byKey is the index in fields of each quoted JSON name.
	byKey map[string]int
	// col is the Parquet column index of each named column; Group sorts
	// its fields by name, so the index is not the declaration order.
	col  map[string]int
	cols []int // the column index of each of fields
	// env is the column index of each of envelopeColumns, looked up once
	// here rather than by name for every row.
	env [colData + 1]int
}

// Indexes in envelopeColumns (and topicLayout.env).
const (
	colTopic = iota
	colPartition
	colOffset
	colKey
	colPublishedAt
	colEventID
	colEventType
	colEventVersion
	colTimestamp
	colSource
	colCorrelationID
	colCausationID
	colUserID
	colSessionID
	colData
)

// layouts are computed once, per topic, from the catalog.
var layouts = func() map[string]*topicLayout {
	m := map[string]*topicLayout{}
	for _, t := range event.Topics {
		m[string(t.Name)] = newLayout(t.Name)
	}
	return m
}()

// layoutOf returns the layout of topic, or a layout without typed
// columns for a topic outside the catalog.
func layoutOf(topic string) *topicLayout {
	if l, ok := layouts[topic]; ok {
		return l
	}
	return newLayout(event.Topic(topic))
}

func newLayout(topic event.Topic) *topicLayout {
	l := &topicLayout{col: map[string]int{}, byKey: map[string]int{}}
	seen := map[string]bool{}
	for _, s := range event.Catalog() {
		if s.Topic != topic {
			continue
		}
		st := reflect.TypeOf(s.New()).Elem()
		for i := range st.NumField() {
			f := st.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			var kind fieldKind
			switch k := f.Type.Kind(); {
			case f.Type == timeType:
				kind = kindTime
			case k == reflect.String:
				kind = kindString
			case k == reflect.Bool:
				kind = kindBool
			case k >= reflect.Int && k <= reflect.Int64:
				kind = kindInt
			default:
				continue // nested or repeated: in data only
			}
			if seen[name] {
				continue // one column per name (none for a second kind)
			}
			seen[name] = true
			l.byKey[`"`+name+`"`] = len(l.fields)
			l.fields = append(l.fields, typedField{column: "data_" + snake(name), json: name, kind: kind})
		}
	}
	g := parquet.Group{
		"topic":            parquet.String(),
		"record_partition": parquet.Int(32),
		"record_offset":    parquet.Int(64),
		"key":              parquet.String(),
		"published_at":     parquet.Timestamp(parquet.Millisecond),
		"event_id":         parquet.String(),
		"event_type":       parquet.String(),
		"event_version":    parquet.String(),
		"timestamp":        parquet.Timestamp(parquet.Microsecond),
		"source":           parquet.String(),
		"correlation_id":   parquet.String(),
		"causation_id":     parquet.String(),
		"user_id":          parquet.String(),
		"session_id":       parquet.String(),
		"data":             parquet.JSON(),
	}
	for _, f := range l.fields {
		n := parquet.Timestamp(parquet.Microsecond)
		switch f.kind {
		case kindString:
			n = parquet.String()
		case kindBool:
			n = parquet.Leaf(parquet.BooleanType)
		case kindInt:
			n = parquet.Int(64)
		}
		g[f.column] = parquet.Optional(n)
	}
	l.cols = make([]int, len(l.fields))
	l.schema = parquet.NewSchema(string(topic), g)
	for i, path := range l.schema.Columns() {
		l.col[path[0]] = i
	}
	for i, f := range l.fields {
		l.cols[i] = l.col[f.column]
	}
	for i, name := range envelopeColumns {
		l.env[i] = l.col[name]
	}
	return l
}

// codec compresses every column: Snappy is fast to write and every common
// reader (DuckDB, pyarrow, Spark, Trino) reads it.
var codec compress.Codec = &fastSnappy{}

// fastSnappy is parquet-go's Snappy codec with the faster of the encoders
// of klauspost/compress: its default (s2.EncodeSnappyBetter) allocates
// hash tables for every page and cost a tenth of the export's CPU for a
// few percent of size. The blocks are plain Snappy either way.
type fastSnappy struct{ snappy.Codec }

func (*fastSnappy) Encode(dst, src []byte) ([]byte, error) {
	return s2.EncodeSnappy(dst, src), nil
}

// row sets row (reusing its memory) to r as a Parquet row of l and
// returns it.
func (l *topicLayout) row(row parquet.Row, r *Record) parquet.Row {
	n := len(l.col)
	if cap(row) < n {
		row = make(parquet.Row, n)
	}
	row = row[:n]
	e := r.Envelope
	set := func(col int, v parquet.Value) {
		c := l.env[col]
		row[c] = v.Level(0, 0, c)
	}
	str := func(col int, s string) { set(col, parquet.ByteArrayValue(unsafeBytes(s))) }
	str(colTopic, r.Topic)
	set(colPartition, parquet.Int32Value(r.Partition))
	set(colOffset, parquet.Int64Value(r.Offset))
	str(colKey, r.Key)
	set(colPublishedAt, parquet.Int64Value(r.PublishedAt.UnixMilli()))
	str(colEventID, e.EventID)
	str(colEventType, string(e.EventType))
	str(colEventVersion, e.EventVersion)
	set(colTimestamp, parquet.Int64Value(e.Timestamp.UnixMicro()))
	str(colSource, e.Source)
	str(colCorrelationID, e.CorrelationID)
	str(colCausationID, e.CausationID)
	str(colUserID, e.Metadata.UserID)
	str(colSessionID, e.Metadata.SessionID)
	set(colData, parquet.ByteArrayValue(e.Data))
	if len(l.fields) == 0 {
		return row
	}
	for _, c := range l.cols {
		row[c] = parquet.NullValue().Level(0, 0, c)
	}
	// A field that does not have the current version's type (a payload of
	// an older version) stays null; data keeps it whole.
	eachField(e.Data, func(k, v []byte) bool {
		i, ok := l.byKey[string(k)]
		if !ok {
			return true
		}
		c := l.cols[i]
		switch s, n, b, ok := scalar(v, l.fields[i]); {
		case !ok:
		case l.fields[i].kind == kindString:
			row[c] = parquet.ByteArrayValue(unsafeBytes(s)).Level(0, 1, c)
		case l.fields[i].kind == kindBool:
			row[c] = parquet.BooleanValue(b).Level(0, 1, c)
		default:
			row[c] = parquet.Int64Value(n).Level(0, 1, c)
		}
		return true
	})
	return row
}

// unsafeBytes returns s's bytes without copying: the Parquet writer copies
// what it keeps, and the strings outlive the row.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// snake turns a JSON name such as totalCents into total_cents.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
