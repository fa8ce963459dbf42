package inbox

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
