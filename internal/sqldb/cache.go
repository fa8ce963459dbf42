package sqldb

import "context"

// Cache returns the map kept under key for the life of tx, empty the first
// time: what a batch's work reads once and shares (an order's stream, a
// ledger, a card), so that a batch reads it in one query, not once per
// event. It is registered as a pending write that writes nothing
// (Tx.Pending): a rollback, of the transaction or to a savepoint of its
// work, empties it, for what it held may have been undone. key is an
// unexported type of the caller's, as for Pending.
func Cache[K comparable, V any](tx *Tx, key any) map[K]V {
	return tx.Pending(key, func() Pending { return txCache[K, V]{} }).(txCache[K, V])
}

type txCache[K comparable, V any] map[K]V

func (txCache[K, V]) Flush(context.Context, *Tx) error { return nil }
func (c txCache[K, V]) Discard()                       { clear(c) }
