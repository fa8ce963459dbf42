package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// oldHash is a record's hash as the trail computed it before blocks, one
// record at a time, written out again from its documentation (see
// chainHash): the chain of blocks must continue it unchanged.
func oldHash(prev string, seq int64, eventID, topic string, recordedAt int64, key string, envelope []byte) string {
	h := sha256.Sum256([]byte(prev + "\n" + strconv.FormatInt(seq, 10) + "\n" + eventID + "\n" + topic + "\n" +
		strconv.FormatInt(recordedAt, 10) + "\n" + strconv.Itoa(len(key)) + ":" + key + "\n" + string(envelope)))
	return hex.EncodeToString(h[:])
}

// writeOldChain writes envs as records appended one at a time, as the
// trail did before blocks, and moves the chain head to the last. On a
// database migrated with 0003, the archive's position moves with it, each
// record having been archived as it was appended (as 0003 sets it for a
// trail written before it).
func writeOldChain(t testing.TB, s *Service, envs []*event.Envelope) {
	t.Helper()
	ctx := context.Background()
	prev := GenesisHash
	for i, e := range envs {
		env, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		seq, topic, at := int64(i+1), string(event.TopicOf(e.EventType)), int64(1_700_000_000_000+i)
		hash := oldHash(prev, seq, e.EventID, topic, at, e.Key, env)
		if _, err := s.d.DB.Exec(ctx, `INSERT INTO audit_log (seq, event_id, event_type, topic, record_key, correlation_id, causation_id, source, occurred_at, recorded_at, envelope, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			seq, e.EventID, string(e.EventType), topic, e.Key, e.CorrelationID, e.CausationID, e.Source, e.Timestamp.UnixMilli(), at, string(env), prev, hash); err != nil {
			t.Fatal(err)
		}
		prev = hash
	}
	if _, err := s.d.DB.Exec(ctx, `UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1`, len(envs), prev); err != nil {
		t.Fatal(err)
	}
	if migrated(t, s, "0003_archive_position.sql") {
		if _, err := s.d.DB.Exec(ctx, `UPDATE chain_head SET archived_seq = seq, archived_hash = hash`); err != nil {
			t.Fatal(err)
		}
	}
}

// migrated reports whether the service's database has had migration name.
func migrated(t testing.TB, s *Service, name string) bool {
	t.Helper()
	var n int
	if err := s.d.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// archived returns the AuditBlockRecorded in the outbox, in the order
// written.
func archived(t testing.TB, s *Service) []*event.AuditBlockRecorded {
	t.Helper()
	rows, err := s.d.DB.Query(context.Background(), `SELECT msg_key, value FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*event.AuditBlockRecorded
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		e, err := event.Decode(v)
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.Payload()
		if err != nil {
			t.Fatal(err)
		}
		b, ok := p.(*event.AuditBlockRecorded)
		if !ok || string(k) != "audit" {
			t.Fatalf("outbox holds a %s keyed %q, want AuditBlockRecorded keyed audit", e.EventType, k)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustVerify(t *testing.T, s *Service, records int64) {
	t.Helper()
	res, err := s.Verify(context.Background())
	if err != nil || !res.OK() || res.Records != records {
		t.Fatalf("Verify = %+v, %v; want %d intact records", res, err, records)
	}
}

// TestBlocksContinueAChainWrittenBeforeThem: records appended one at a
// time (as before blocks) and then blocks verify as one chain; the first
// block links to the last old hash; each block is archived once, and its
// archive record checks on its own. Tampering with a record inside a
// block, deleting a block, or reordering records or blocks is detected,
// at the first record affected.
func TestBlocksContinueAChainWrittenBeforeThem(t *testing.T) {
	for _, c := range []struct {
		name     string
		tamper   []string // statements; seqs 1–3 old records, 4–7 and 8–10 two blocks
		firstBad int64
		reason   string
	}{
		{"intact", nil, 0, ""},
		{"record inside a block changed", []string{`UPDATE audit_log SET envelope = REPLACE(envelope, '"sku":"S5"', '"sku":"FAKE"') WHERE seq = 6`}, 6, "hash mismatch"},
		{"record's key inside a block changed", []string{`UPDATE audit_log SET record_key = 'p2' WHERE seq = 9`}, 9, "hash mismatch"},
		{"old record changed", []string{`UPDATE audit_log SET envelope = REPLACE(envelope, '"sku":"S1"', '"sku":"FAKE"') WHERE seq = 2`}, 2, "hash mismatch"},
		{"block deleted", []string{`DELETE FROM audit_log WHERE seq BETWEEN 4 AND 7`}, 4, "gap in seq: record 4 is missing"},
		{"last block deleted", []string{`DELETE FROM audit_log WHERE seq >= 8`}, 8, "the last records were deleted"},
		{"records inside a block swapped", []string{
			`UPDATE audit_log SET seq = 1005 WHERE seq = 5`, `UPDATE audit_log SET seq = 5 WHERE seq = 6`, `UPDATE audit_log SET seq = 6 WHERE seq = 1005`,
		}, 5, "prev_hash mismatch"},
		{"blocks swapped", []string{
			`UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4`,
			`UPDATE audit_log SET seq = seq - 1004 WHERE seq >= 1008`, // the second block to 4–6
			`UPDATE audit_log SET seq = seq - 997 WHERE seq >= 1004`,  // the first to 7–10
		}, 4, "prev_hash mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openService(t)
			envs := events(t, 10, 10)
			writeOldChain(t, s, envs[:3])
			mustVerify(t, s, 3)
			var head string
			if err := s.d.DB.QueryRow(context.Background(), `SELECT hash FROM chain_head`).Scan(&head); err != nil {
				t.Fatal(err)
			}
			recordBlock(t, s, envs[3:7]...)
			recordBlock(t, s, envs[7:]...)
			mustVerify(t, s, 10)
			blocks := archived(t, s)
			if len(blocks) != 2 || blocks[0].PrevHash != head || blocks[1].PrevHash != blocks[0].Hash || len(blocks[0].Records) != 4 || len(blocks[1].Records) != 3 {
				t.Fatalf("archived %d blocks %+v; want 2, of 4 and 3 records, the first linking to the last old hash %s", len(blocks), blocks, head)
			}
			for i, b := range blocks {
				recs, err := Archived(b)
				if err != nil || recs[0].Seq != int64(4+4*i) || recs[0].EventID != envs[3+4*i].EventID || recs[0].Offset != envs[3+4*i].Offset {
					t.Errorf("block %d: Archived = %+v, %v", i, recs, err)
				}
			}
			for _, q := range c.tamper {
				if _, err := s.d.DB.Exec(context.Background(), q); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Verify(context.Background())
			if err != nil || res.FirstBad != c.firstBad || !strings.Contains(res.Reason, c.reason) {
				t.Errorf("Verify = %+v, %v; want first bad %d with reason containing %q", res, err, c.firstBad, c.reason)
			}
		})
	}
}

// TestABlockRecordsEachEventOnce: an event already in the trail, or twice
// in a block, is recorded once, the block's other events with no gap.
func TestABlockRecordsEachEventOnce(t *testing.T) {
	s := openService(t)
	envs := events(t, 4, 10)
	recordBlock(t, s, envs[0])
	recordBlock(t, s, envs[1], envs[0], envs[1], envs[2])
	recordBlock(t, s, envs[0], envs[2]) // nothing new: no block, no archive record
	recordBlock(t, s, envs[3])
	mustVerify(t, s, 4)
	blocks := archived(t, s)
	var got []string
	for _, b := range blocks {
		var ids []string
		for _, r := range b.Records {
			ids = append(ids, fmt.Sprint(r.Seq, ":", r.EventID == envs[r.Seq-1].EventID))
		}
		got = append(got, strings.Join(ids, ","))
	}
	if strings.Join(got, " ") != "1:true 2:true,3:true 4:true" {
		t.Errorf("archived blocks %q, want 1 / 2,3 / 4 with the events in order", got)
	}
}

// TestALargeBlockIsArchivedInBoundedParts: a block whose records exceed
// MaxArchivePart is archived in parts, each a stretch of the chain that
// checks on its own and continues the one before.
func TestALargeBlockIsArchivedInBoundedParts(t *testing.T) {
	s := openService(t)
	envs := events(t, 7, 200<<10) // ~200 KiB each: two a part
	recordBlock(t, s, envs...)
	mustVerify(t, s, 7)
	parts := archived(t, s)
	if len(parts) != 4 {
		t.Fatalf("%d parts, want 4 (2+2+2+1 records of ~200 KiB under %d bytes)", len(parts), MaxArchivePart)
	}
	seq := int64(1)
	for i, p := range parts {
		recs, err := Archived(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Part != i+1 || p.Parts != len(parts) || recs[0].Seq != seq || i > 0 && p.PrevHash != parts[i-1].Hash {
			t.Errorf("part %d: %d of %d from seq %d (want %d), prevHash %s", i+1, p.Part, p.Parts, recs[0].Seq, seq, p.PrevHash)
		}
		seq += int64(len(recs))
		size := 0
		for _, r := range recs {
			size += len(r.Envelope)
		}
		if size > MaxArchivePart {
			t.Errorf("part %d carries %d bytes of envelopes, over %d", i+1, size, MaxArchivePart)
		}
	}
}

// TestArchivedReadsBothArchiveFormats: a reader of audit-events takes the
// AuditRecorded of records appended before blocks as it takes blocks, and
// refuses records that do not chain.
func TestArchivedReadsBothArchiveFormats(t *testing.T) {
	e := events(t, 1, 10)[0]
	env, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	topic := string(event.TopicOf(e.EventType))
	hash := oldHash(GenesisHash, 1, e.EventID, topic, 42, e.Key, env)
	old := &event.AuditRecorded{Seq: 1, EventID: e.EventID, Type: string(e.EventType), Topic: topic, Partition: 3, Offset: 100,
		Key: e.Key, RecordedAt: 42, PrevHash: GenesisHash, Hash: hash, Envelope: env}
	recs, err := Archived(old)
	if err != nil || len(recs) != 1 || recs[0].EventID != e.EventID || recs[0].Offset != 100 || string(recs[0].Envelope) != string(env) {
		t.Errorf("Archived(AuditRecorded) = %+v, %v", recs, err)
	}
	block := &event.AuditBlockRecorded{Chain: "audit", PrevHash: GenesisHash, Hash: hash, Part: 1, Parts: 1, Records: recs}
	if _, err := Archived(block); err != nil {
		t.Errorf("Archived(AuditBlockRecorded) = %v", err)
	}
	old.Envelope = []byte(strings.Replace(string(env), `"S0"`, `"FAKE"`, 1))
	block.Records[0].Envelope = old.Envelope
	for _, p := range []event.Payload{old, block} {
		if _, err := Archived(p); err == nil || !strings.Contains(err.Error(), "do not chain") {
			t.Errorf("Archived(changed %s) = %v, want records that do not chain", p.EventType(), err)
		}
	}
}

// TestABlockLargerThanOneStatement: a block of more records than one
// INSERT takes, one of them recorded before, is recorded whole, in order,
// once each.
func TestABlockLargerThanOneStatement(t *testing.T) {
	s := openService(t)
	envs := events(t, insertRows+200, 10)
	recordBlock(t, s, envs[600])
	recordBlock(t, s, envs...)
	mustVerify(t, s, int64(len(envs)))
	var recorded []string
	for _, b := range archived(t, s) {
		recs, err := Archived(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			recorded = append(recorded, r.EventID)
		}
	}
	want := []string{envs[600].EventID}
	for i, e := range envs {
		if i != 600 {
			want = append(want, e.EventID)
		}
	}
	if strings.Join(recorded, " ") != strings.Join(want, " ") {
		t.Errorf("archived %d records, want %d: the first block's, then the second's without the one recorded before", len(recorded), len(want))
	}
}

// TestARowAfterTheHeadStopsTheAppend: a row after the chain head, which
// only a hand on the table puts there, makes appending fail, not be taken
// for a duplicate and deleted (on SQLite every conflict skips its row).
func TestARowAfterTheHeadStopsTheAppend(t *testing.T) {
	s := openService(t)
	ctx := context.Background()
	envs := events(t, 3, 10)
	recordBlock(t, s, envs[0])
	if err := s.ExecForTest(ctx, `INSERT INTO audit_log (seq, event_id, event_type, topic, record_key, correlation_id, causation_id, source, occurred_at, recorded_at, envelope, prev_hash, hash)
		VALUES (2, 'stray', 't', 't', 'k', 'c', 'c', 's', 0, 0, '{}', 'x', 'y')`); err != nil {
		t.Fatal(err)
	}
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, e := range envs[1:] {
			if err := s.onEvent(ctx, tx, e, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("a block appended over a row after the chain head")
	}
	var n int
	if err := s.d.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit_log WHERE event_id = 'stray'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the stray row: %d, %v; want it left", n, err)
	}
}

// TestBlockJSONIsWhatEncodingJSONWrites: the archive record's JSON, written
// by hand, is byte for byte what encoding/json writes of the payload, for
// keys that need escaping too.
func TestBlockJSONIsWhatEncodingJSONWrites(t *testing.T) {
	envs := events(t, 5, 10)
	keys := []string{"p1", `a "quoted" \\ key`, "<html> & co", "ünïcödé \u2028 line", "ctl\x00\x1f\x7f", "bad utf-8 \xff"}
	var rs []*record
	for i, k := range keys {
		env, err := envs[i%len(envs)].Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, &record{Seq: int64(7 + i), EventID: envs[i%len(envs)].EventID, EventType: "ProductCreated", Topic: "product-events",
			Partition: int32(i), Offset: int64(-1 + i*1000), Key: k, RecordedAt: 1_800_000_000_000 + int64(i), Envelope: env,
			PrevHash: fmt.Sprint("prev", i), Hash: fmt.Sprint("hash", i)})
	}
	p := &event.AuditBlockRecorded{Chain: chainName, PrevHash: rs[0].PrevHash, Hash: rs[len(rs)-1].Hash, Part: 2, Parts: 3}
	for _, r := range rs {
		p.Records = append(p.Records, event.AuditBlockRecord{Seq: r.Seq, EventID: r.EventID, Type: r.EventType, Topic: r.Topic,
			Partition: r.Partition, Offset: r.Offset, Key: r.Key, RecordedAt: r.RecordedAt, Envelope: r.Envelope})
	}
	want, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := blockJSON(rs, 2, 3); string(got) != string(want) {
		t.Errorf("blockJSON:\n%s\nencoding/json:\n%s", got, want)
	}
}
