package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rungdev/rung/stitch/sqldb"
)

// nowSQL is each dialect's column default for the current instant, in the encoding
// sqldb uses for times (on SQLite, fixed-width UTC text that orders as instants).
var nowSQL = map[sqldb.Dialect]string{
	sqldb.Postgres: "now()",
	sqldb.SQLite:   "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000+00:00')",
}

// epoch is the default next_attempt_at: "ready now" on any relay's clock. (A default of
// the database's now() would hold a fresh row back from a relay whose clock runs behind.)
var epoch = map[sqldb.Dialect]string{
	sqldb.Postgres: "'1970-01-01 00:00:00+00'",
	sqldb.SQLite:   "'1970-01-01 00:00:00.000000+00:00'",
}

func ddl(d sqldb.Dialect) []string {
	id := "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	if d == sqldb.SQLite {
		// AUTOINCREMENT: ids never go back, even after the newest rows are pruned.
		id = "INTEGER PRIMARY KEY AUTOINCREMENT"
	}
	ts, js, now := d.TimeType(), d.JSONType(), nowSQL[d]
	return []string{
		`CREATE TABLE IF NOT EXISTS rung_outbox (
	id              ` + id + `,
	event_id        TEXT NOT NULL UNIQUE,
	name            TEXT NOT NULL,
	version         INTEGER NOT NULL DEFAULT 1,
	ordering_key    TEXT NOT NULL,
	occurred_at     ` + ts + ` NOT NULL,
	payload         ` + js + ` NOT NULL,
	created_at      ` + ts + ` NOT NULL DEFAULT ` + now + `,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at ` + ts + ` NOT NULL DEFAULT ` + epoch[d] + `,
	last_error      TEXT NOT NULL DEFAULT '',
	published_at    ` + ts + `
)`,
		// The claim walks unpublished rows in id order and looks for an earlier unpublished
		// row with the same key; both indexes stay small because published rows leave them.
		`CREATE INDEX IF NOT EXISTS rung_outbox_pending ON rung_outbox (id) WHERE published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS rung_outbox_key_pending ON rung_outbox (ordering_key, id) WHERE published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS rung_outbox_published ON rung_outbox (published_at) WHERE published_at IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS rung_outbox_dead (
	id              BIGINT NOT NULL PRIMARY KEY,
	event_id        TEXT NOT NULL,
	name            TEXT NOT NULL,
	version         INTEGER NOT NULL,
	ordering_key    TEXT NOT NULL,
	occurred_at     ` + ts + ` NOT NULL,
	payload         ` + js + ` NOT NULL,
	created_at      ` + ts + ` NOT NULL,
	attempts        INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	dead_at         ` + ts + ` NOT NULL
)`,
	}
}

// Migrate creates the outbox and dead-letter tables when absent. It is safe to run from
// several processes at once. events.Migrate creates the events table.
func Migrate(ctx context.Context, db *sql.DB, d sqldb.Dialect) error {
	if err := d.Validate(); err != nil {
		return err
	}
	return sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		if d == sqldb.Postgres {
			// Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7283110455)`); err != nil {
				return fmt.Errorf("migrate outbox: lock: %w", err)
			}
		}
		for _, stmt := range ddl(d) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate outbox: %s: %w", firstLine(stmt), err)
			}
		}
		return nil
	})
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
