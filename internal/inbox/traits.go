package inbox

// Traits a service declares by implementing a marker interface; the
// runtime reads them when it builds the service's Consumer.

// OwnDeduplication is a service whose handlers recognise, in the
// service's own tables and in the batch's transaction, an event they
// applied before — by its event id — and leave no second effect: the
// audit trail, whose event_id is UNIQUE and whose block leaves out an
// event already recorded or twice in the batch. The runtime then sets
// Consumer.OwnDeduplication: the consumer keeps no processed-event
// records for it, sparing a look-up and an insert per event (and a
// B-tree that grows with every event) in the same transaction as the
// service's own guard.
//
// The price: a redelivered or replayed event reaches its handler again,
// so it is counted as processed, not as a duplicate, in the consumer's
// metrics; the handler's own guard is what keeps it from taking effect
// twice.
type OwnDeduplication interface {
	// DeduplicatesEvents marks the service; it is never called.
	DeduplicatesEvents()
}

// EnvelopeReader is a service whose handlers read the envelope only, never
// the payload (they get a nil one): the audit trail, which records
// envelopes as they are. The runtime then sets Consumer.EnvelopeOnly: its
// records' payloads are neither decoded nor validated against their
// schema — in distributed mode a third of the audit process's CPU. A
// payload that does not match its schema is then recorded, as it was
// published, rather than dead-lettered in that group (the groups that
// handle its type dead-letter it); an envelope that does not decode, or
// of a type or version the catalog lacks, is still a permanent error.
type EnvelopeReader interface {
	// ReadsEnvelopesOnly marks the service; it is never called.
	ReadsEnvelopesOnly()
}
