// Package events owns rung's permanent events table: the one table of business events,
// written by the stitch projector (which relays lead_created from the outbox and calls
// Insert) and by the tier-4 example's Log.Emit in package tiers/eventlog. There is no
// second events table anywhere in rung.
//
// The table (see Migrate) keeps one row per event_id, forever: name and version, when it
// happened (occurred_at) and when it was recorded, the entity it is about (subject_id),
// promoted filterable columns (source, medium, campaign, landing_page, variant, amount)
// and the whole payload as JSON (jsonb on PostgreSQL). Inserting an event_id that is
// already there changes nothing, so a relay that delivers twice never double-counts.
// Count and List read it back through a Filter.
package events
