// Package sqldb is the seam between rung and the two business databases it runs on:
// PostgreSQL (through pgx's database/sql driver) and SQLite (the pure-Go
// modernc.org/sqlite driver). stitch, its outbox and events table, and the tier examples
// all go through it. It owns only what differs between the two: how to open a
// connection, placeholder syntax, column types, time encoding, date bucketing and how a
// unique violation is recognised. Everything else is plain database/sql.
//
// Times are always stored in UTC. On SQLite they are text in one fixed-width layout
// (microseconds, "+00:00"), so that comparing two of them as strings orders them as
// instants and SQLite's own date functions read them; bind every time through
// Dialect.Time and scan every time into Time, and both backends agree to the
// microsecond (PostgreSQL's precision).
package sqldb
