// Package outbox owns rung's durable business-event path: the outbox table a business
// transaction writes its events into, the relay that ships committed rows to NATS
// JetStream (or, with no broker, straight into the events table), and the projector that
// turns the stream into rows of the permanent events table.
//
// It is the "outbox" and "broker" event levels of the ladder. The event is generic: a
// name, an ordering key (a lead_id, an order id) and a JSON payload; lead_created, made
// by package stitch, is its first user.
//
// # The outbox table
//
// Backends in any language may write to the outbox: insert one row into rung_outbox in
// the same transaction as the business change, and the relay does the rest. The DDL
// (PostgreSQL):
//
//	CREATE TABLE rung_outbox (
//	    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- shipping order
//	    event_id        TEXT   NOT NULL UNIQUE,  -- 8–64 of [A-Za-z0-9_-]; Nats-Msg-Id; events table key
//	    name            TEXT   NOT NULL,         -- event name: [a-z][a-z0-9_]*, e.g. lead_created
//	    version         INT    NOT NULL DEFAULT 1,
//	    ordering_key    TEXT   NOT NULL,         -- events with one key ship in id order, e.g. the lead_id
//	    occurred_at     TIMESTAMPTZ NOT NULL,
//	    payload         JSONB  NOT NULL,         -- a JSON object; frozen when the event is made
//	    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
//	    attempts        INT    NOT NULL DEFAULT 0,  -- relay bookkeeping from here on:
//	    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01Z', -- a writer leaves
//	    last_error      TEXT   NOT NULL DEFAULT '',  -- these to their defaults
//	    published_at    TIMESTAMPTZ                 -- NULL until shipped
//	);
//
// On SQLite the id is INTEGER PRIMARY KEY AUTOINCREMENT, the payload TEXT, and times are
// UTC text in the fixed-width layout "2006-01-02 15:04:05.000000+00:00" (package sqldb),
// so that they compare as instants.
//
// A writer inserts (event_id, name, version, ordering_key, occurred_at, payload). To keep
// one key's events in order, insert the outbox row after the statement that locks the
// business row (the UPDATE of the lead), so that ids follow the order in which the
// transactions hold that lock.
//
// # Shipping
//
// The relay claims committed, unpublished rows with FOR UPDATE SKIP LOCKED (PostgreSQL),
// ships them, and marks them published in the claiming transaction. It never keeps a
// watermark on max(id): a transaction that took its id early and commits late is simply
// claimed on a later round. A row is claimed only when no earlier row with its ordering
// key is still unpublished, so one key's events ship in order even with several relays.
// A crash between publish and mark rolls the claim back and the row ships again: the
// broker's duplicate window (Nats-Msg-Id = event_id) absorbs that, and beyond the window
// the events table's unique event_id does. Delivery is at least once; the events table
// holds each event exactly once.
package outbox
