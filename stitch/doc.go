// Package stitch owns the moment an anonymous visitor becomes a lead: it reads the
// visitor's attribution (first and last touch, landing page, first-seen time, experiment
// variants) from the telemetry sink, freezes it into a lead_created business event, and
// writes that event into the outbox inside the business transaction that creates the
// lead. Package stitch/outbox ships it from there to NATS JetStream and the permanent
// events table.
//
// Telemetry is lossy by design; the event is not. Reconcile measures the gap: how many
// lead_created events the events table holds against the form_submitted signals the
// sink caught for the same period.
//
// Nothing here runs on the collector's hot path: attribution is read at conversion time,
// once per lead, and cached briefly for visitors converting now.
package stitch
