// Package eventlog is Tier 4 of the ladder, "event log + rollups", and it owns rung's
// permanent events table: the one table of business events, written by Emit here and by
// the stitch projector (which relays lead_created from the outbox and calls Insert). There
// is no second events table anywhere in rung.
//
// The table (see Migrate) keeps one row per event_id, forever: name and version, when it
// happened (occurred_at) and when it was recorded, the entity it is about (subject_id),
// promoted filterable columns (source, medium, campaign, landing_page, variant, amount)
// and the whole payload as JSON (jsonb on PostgreSQL). Inserting an event_id that is
// already there changes nothing, so a relay that delivers twice never double-counts.
//
// An event is defined schema-first (Definition, with the JSON Schemas of the ladder's own
// events under defs/), emitted at the moment of the change inside the caller's
// transaction with its values copied in (Log.Emit), and aggregated by Rollup: an
// incremental path kept in the emitting transaction, a recomputation from the events
// that is idempotent, and Reconcile, which rebuilds from the events and reports every
// group where the incremental rollup disagrees.
//
// What this tier cannot do: it only knows the dimensions copied into the payload, and
// it records what happened rather than an entity's past state (that is Tier 5,
// package sourcing).
package eventlog
