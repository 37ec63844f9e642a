// Package eventlog is Tier 4 of the ladder, "event log + rollups". It writes into rung's
// permanent events table, which package stitch/events owns (the stitch projector writes
// there too), and keeps rollups of it.
//
// An event is defined schema-first (Definition, with the JSON Schemas of the ladder's own
// events under defs/), emitted at the moment of the change inside the caller's
// transaction with its values copied in (Log.Emit, which validates the payload and calls
// events.Insert), and aggregated by Rollup: an incremental path kept in the emitting
// transaction, a recomputation from the events that is idempotent, and Reconcile, which
// rebuilds from the events and reports every group where the incremental rollup
// disagrees.
//
// What this tier cannot do: it only knows the dimensions copied into the payload, and
// it records what happened rather than an entity's past state (that is Tier 5,
// package sourcing).
package eventlog
