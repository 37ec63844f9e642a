package cache

import (
	"context"
	"fmt"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Counter is a counter-cache column: Parent.Column holds the number of Child rows whose
// ForeignKey equals Parent.Key. Every write path that inserts or deletes a child calls
// Adjust in the same transaction.
type Counter struct {
	Parent     string // e.g. "contacts"
	Key        string // the parent's key column, e.g. "id"
	Column     string // the cache column, e.g. "jobs_count"
	Child      string // e.g. "jobs"
	ForeignKey string // the child's column pointing at the parent, e.g. "contact_id"
}

func (c Counter) check() error {
	for _, n := range []struct{ what, v string }{{"parent", c.Parent}, {"key", c.Key}, {"column", c.Column},
		{"child", c.Child}, {"foreign key", c.ForeignKey}} {
		if err := sqldb.Ident(n.v); err != nil {
			return fmt.Errorf("%w: counter %s: %w", ErrDecl, n.what, err)
		}
	}
	return nil
}

// Migrate adds the cache column (BIGINT NOT NULL DEFAULT 0) to the parent table if it
// is absent. Existing rows start at 0: run Backfill after adding it to a live table.
func (c Counter) Migrate(ctx context.Context, db sqldb.Tx, d sqldb.Dialect) error {
	if err := c.check(); err != nil {
		return err
	}
	if d == sqldb.Postgres {
		_, err := db.ExecContext(ctx, `ALTER TABLE `+c.Parent+` ADD COLUMN IF NOT EXISTS `+c.Column+` BIGINT NOT NULL DEFAULT 0`)
		if err != nil {
			return fmt.Errorf("add counter %s.%s: %w", c.Parent, c.Column, err)
		}
		return nil
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.Parent, c.Column).Scan(&n); err != nil {
		return fmt.Errorf("look up %s.%s: %w", c.Parent, c.Column, err)
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.Parent+` ADD COLUMN `+c.Column+` BIGINT NOT NULL DEFAULT 0`); err != nil {
			return fmt.Errorf("add counter %s.%s: %w", c.Parent, c.Column, err)
		}
	}
	return nil
}

// Adjust adds delta (+1 on insert, -1 on delete) to the parent's counter through tx,
// the transaction that inserts or deletes the child: a rollback undoes both.
func (c Counter) Adjust(ctx context.Context, tx sqldb.Execer, d sqldb.Dialect, parent any, delta int64) error {
	if err := c.check(); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, d.Rebind(`UPDATE `+c.Parent+` SET `+c.Column+` = `+c.Column+` + ? WHERE `+c.Key+` = ?`), delta, parent)
	if err != nil {
		return fmt.Errorf("adjust %s.%s of %v by %d: %w", c.Parent, c.Column, parent, delta, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("adjust %s.%s of %v: %w", c.Parent, c.Column, parent, ErrNoParent)
	}
	return nil
}

// Get reads the cached count of one parent: the cheap read this tier exists for.
func (c Counter) Get(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, parent any) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	var n int64
	if err := q.QueryRowContext(ctx, d.Rebind(`SELECT `+c.Column+` FROM `+c.Parent+` WHERE `+c.Key+` = ?`), parent).Scan(&n); err != nil {
		return 0, fmt.Errorf("read %s.%s of %v: %w", c.Parent, c.Column, parent, err)
	}
	return n, nil
}

func (c Counter) liveExpr() string {
	return `(SELECT count(*) FROM ` + c.Child + ` WHERE ` + c.Child + `.` + c.ForeignKey + ` = ` + c.Parent + `.` + c.Key + `)`
}

// Reset recounts one parent from the child rows.
func (c Counter) Reset(ctx context.Context, x sqldb.Execer, d sqldb.Dialect, parent any) error {
	if err := c.check(); err != nil {
		return err
	}
	_, err := x.ExecContext(ctx, d.Rebind(`UPDATE `+c.Parent+` SET `+c.Column+` = `+c.liveExpr()+` WHERE `+c.Key+` = ?`), parent)
	if err != nil {
		return fmt.Errorf("reset %s.%s of %v: %w", c.Parent, c.Column, parent, err)
	}
	return nil
}

// Backfill recounts every parent whose cache is wrong and returns how many it changed.
// Run it after Migrate on an existing table, or to repair what Drift reported.
func (c Counter) Backfill(ctx context.Context, x sqldb.Execer, d sqldb.Dialect) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	res, err := x.ExecContext(ctx, `UPDATE `+c.Parent+` SET `+c.Column+` = `+c.liveExpr()+` WHERE `+c.Column+` <> `+c.liveExpr())
	if err != nil {
		return 0, fmt.Errorf("backfill %s.%s: %w", c.Parent, c.Column, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("backfill %s.%s: %w", c.Parent, c.Column, err)
	}
	return n, nil
}

// Drift compares every parent's cached count with a live count of its children and
// reports each one that differs, in key order. It writes nothing.
func (c Counter) Drift(ctx context.Context, q sqldb.Querier, d sqldb.Dialect) ([]Drift, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+c.Key+`, `+c.Column+`, `+c.liveExpr()+` FROM `+c.Parent+
		` WHERE `+c.Column+` <> `+c.liveExpr()+` ORDER BY `+c.Key)
	if err != nil {
		return nil, fmt.Errorf("drift check %s.%s: %w", c.Parent, c.Column, err)
	}
	defer rows.Close()
	var out []Drift
	for rows.Next() {
		var k any
		var x Drift
		if err := rows.Scan(&k, &x.Cached, &x.Live); err != nil {
			return nil, fmt.Errorf("drift check %s.%s: %w", c.Parent, c.Column, err)
		}
		if b, ok := k.([]byte); ok {
			k = string(b)
		}
		x.Key = fmt.Sprint(k)
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drift check %s.%s: %w", c.Parent, c.Column, err)
	}
	return out, nil
}
