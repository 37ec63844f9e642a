// Package sourcing is Tier 5 of the ladder, "event sourcing": events are the record and
// state is a projection replayed from them. It owns the event store (the stream_events
// table, where appending is the only write the database allows, with optimistic
// concurrency on each stream's version), projections folded by a pure Apply function,
// snapshots every N events to keep replay short, state as of any past instant, and
// upcasting of old event versions on read.
//
// What this tier costs: old event versions must be readable forever (an Upcaster per
// change of shape), replay time grows with the stream (snapshots bound it), and the
// database is no longer something you UPDATE. Use it when you need to reconstruct any
// past state or replay for audit; most stats are better served by Tier 4.
package sourcing
