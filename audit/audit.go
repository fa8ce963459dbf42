// Package audit is the audit service: ADR-0006's "audit trail of all
// business events".
//
// It consumes every event type of the catalog (all topics but the
// archive's own types) and appends each event, once, to the audit_log
// table: an immutable, append-only record holding the exact envelope JSON.
// The rows form a hash chain — each row's hash covers the previous row's
// hash and its own content — so changing, deleting or reordering any row
// is detectable with Verify (GET /api/v1/admin/audit/verify). Admins query
// the trail with GET /api/v1/admin/events.
//
// The trail grows one block at a time: the records of one consumed batch
// (handlers.go). A block's digest is a chained digest, not a Merkle root:
// its records are chained one after the other from the head, as records
// were before blocks, and the block's digest is its last record's hash
// (see chainHash). The head is locked and advanced once per block and the
// records inserted with one statement. Why chained: chains written before
// blocks stay valid as they are and blocks continue them; Verify still
// names the very record that was changed; a block archived in parts is
// checked part by part; and it costs one hash a record. A Merkle root
// would add proofs that one record is in a block without the others,
// which nothing here asks for (Verify and the archive's readers read whole
// blocks). docs/audit.md says more.
//
// The blocks are published as AuditBlockRecorded on audit-events (kept
// seven years; before blocks, one AuditRecorded a record): the archive of
// every business event. An AuditBlockRecorded carries a stretch of
// consecutive blocks, archived once ArchiveRecords records or
// ArchiveDelay have gathered (archiver.go). Replay reads the archived records where a topic's
// retention has deleted them (GET /admin/archive, from audit_log). Security
// events (UserLoggedIn, LoginFailed, AccessDenied, AdminActionPerformed)
// travel on audit-events too and are recorded like business events.
package audit

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"strconv"
	"strings"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/inbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/settings"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Name is the service name.
const Name = "audit"

// Def describes the audit service to the runtime.
func Def() service.Def {
	sub, _ := fs.Sub(migrations, "migrations")
	return service.Def{Name: Name, Migrations: sub, Linger: settings.AuditLinger, New: func(d service.Deps) (service.Service, error) { return New(d), nil }}
}

// GenesisHash is the prev_hash of the chain's first record: 64 zeros.
var GenesisHash = strings.Repeat("0", 64)

// Service is the audit service.
type Service struct {
	d     service.Deps
	store *store
	arch  *archiver
}

// New returns the audit service.
func New(d service.Deps) *Service {
	return &Service{d: d, store: &store{db: d.DB}, arch: newArchiver()}
}

// Handlers records every event type of the catalog but the archive's,
// AuditRecorded and AuditBlockRecorded: the trail does not record its own
// records. The list is built from event.Catalog(), so a type added to the
// catalog is audited without a change here; onEvent reads the envelope,
// not the payload.
func (s *Service) Handlers() []inbox.Handler {
	var hs []inbox.Handler
	for _, spec := range event.Catalog() {
		if !IsArchive(spec.Type) {
			hs = append(hs, inbox.Handler{Type: spec.Type, Func: s.onEvent})
		}
	}
	return hs
}

// IsArchive reports whether t is a type of the trail's archive on
// audit-events: AuditBlockRecorded, or AuditRecorded (one per record, as
// written before the trail was recorded in blocks).
func IsArchive(t event.Type) bool {
	return t == (&event.AuditBlockRecorded{}).EventType() || t == (&event.AuditRecorded{}).EventType()
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	// Records is the number of records in the chain, up to its head.
	Records int64 `json:"records"`
	// FirstBad is the seq of the first broken link (for a gap: the first
	// missing seq), or 0 when the whole chain is intact.
	FirstBad int64 `json:"firstBad"`
	// Reason says what is wrong with FirstBad; "" when intact.
	Reason string `json:"reason"`
}

// OK reports whether the chain is intact.
func (r VerifyResult) OK() bool { return r.FirstBad == 0 }

// Verify recomputes the whole chain in seq order, in bounded memory, and
// reports the first broken link: a gap in seq (a deleted row), a prev_hash
// that is not the previous row's hash, a hash that does not match the
// row's content, an indexed column that disagrees with the envelope, or a
// log that ends before the chain head (deleted last rows). Records
// appended while it runs are not checked. An error means the log could
// not be read, not that it is broken.
func (s *Service) Verify(ctx context.Context) (VerifyResult, error) {
	return s.store.verify(ctx)
}

// chainHash is a record's hash: hex(SHA-256(prevHash || canonical record
// bytes)), prevHash being the hash of the record before it (GenesisHash
// for the first), whichever block either is in. The canonical bytes are
//
//	"\n" seq "\n" eventID "\n" topic "\n" recordedAt "\n" len(key) ":" key "\n" envelope
//
// with the numbers in decimal (recordedAt in Unix milliseconds). Every
// column is covered: the envelope holds event_type, correlation_id,
// causation_id, source and occurred_at (Verify checks those columns
// against it); the key, topic and recorded_at are not in the envelope
// JSON, so they are hashed themselves. The length prefix keeps the
// encoding unambiguous whatever the key holds, and the envelope comes
// last, so its bytes need no delimiting.
func chainHash(prevHash string, r *record) string {
	h, _ := hashRecord(nil, prevHash, r)
	return h
}

// hashRecord is chainHash writing the canonical bytes into scratch, which
// it returns for the next record: one allocation a record, the hash's
// string.
func hashRecord(scratch []byte, prevHash string, r *record) (string, []byte) {
	b := append(scratch[:0], prevHash...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, '\n')
	b = append(b, r.EventID...)
	b = append(b, '\n')
	b = append(b, r.Topic...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, r.RecordedAt, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(len(r.Key)), 10)
	b = append(b, ':')
	b = append(b, r.Key...)
	b = append(b, '\n')
	b = append(b, r.Envelope...)
	sum := sha256.Sum256(b)
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	return string(hx[:]), b
}
