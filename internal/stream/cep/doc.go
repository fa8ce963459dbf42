// Package cep runs pattern rules (complex event processing) as a
// stream.Operator: "A then B within T" (FollowedBy), "A not followed by B
// within T" (NotFollowedBy, fired when the watermark passes A's time + T),
// "N × A for one key within T" (Count), and "B while holders hold the key"
// (WhileHeld, the join StockoutWithDemand needs). Rules are data: a JSON
// Document read by ParseRules, validated with errors that name the field.
//
// Matching is in event time. Events whose type a rule uses are buffered
// until the engine's watermark minus the operator's grace passes them,
// then matched in (time, topic, partition, offset) order, with timeouts
// due before each event fired first. So each match fires exactly once, and
// the same detections come out whatever the batching, the interleaving of
// partitions, or a restore from stored state; an event more than grace
// behind its partition's stream time is dropped and counted as late.
//
// Keys and filters read the JSON payload with dotted paths ("customer.userId",
// "lines.0.productId"); a step's Each path applies it to every element of an
// array. Numbers compare as float64 (exact for integers below 2^53).
//
// Limits: a count match consumes its events (the next needs N new ones); a
// followedBy B completes every pending A of its key; a redelivered event
// (same eventId, new offset) is ignored within a key's pending matches
// only; WhileHeld knows a holder's keys only from its latest First event
// and for Within after it, and fires on every Then event that passes the
// filters (a repeated "stock is 0" fires again).
package cep
