// Package level holds the in-process event levels of the ladder: Sync, which calls
// every handler in the caller's goroutine (level 1), and Async, which hands the event to
// a bounded in-memory queue drained by worker goroutines (level 2). Both are the
// cheapest way to react to an event, and both can lose it: Sync when the request fails
// part-way, Async on a crash or a shutdown that cannot drain in time. Async counts what
// it loses (Stats.Lost) so that the loss is at least visible; it cannot bind an event to
// the business transaction and it does no retry or dedup.
//
// The durable levels are not here, on purpose, so that rung has one implementation of
// each:
//
//   - outbox (level 3) and broker (level 4): package stitch/outbox. Write the event with
//     outbox.Write in the same transaction as the change; the relay ships it to NATS
//     JetStream (broker) or straight into the events table, and the projector writes it
//     into the events table of package stitch/events. A crash loses nothing: the row is
//     committed with the change, or neither is.
//   - telemetry sink (level 0): package collector, the fire-and-forget /collect path
//     into buffer → preagg → sink, lossy by design and never the system of record.
package level
