package cache

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rungdev/rung/stitch/sqldb"
)

// View is a materialized view: Query's result stored under Name and refreshed on
// demand. Unique lists the columns that identify a row of the result; PostgreSQL needs
// a unique index on them to refresh CONCURRENTLY, which lets readers keep reading the
// old contents while the refresh runs.
type View struct {
	Name   string
	Query  string // a SELECT over the source tables
	Unique []string
}

func (v View) check() error {
	if err := sqldb.Ident(v.Name); err != nil {
		return fmt.Errorf("%w: view name: %w", ErrDecl, err)
	}
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(v.Query)), "SELECT") {
		return fmt.Errorf("%w: view %s: query must be a SELECT", ErrDecl, v.Name)
	}
	if len(v.Unique) == 0 {
		return fmt.Errorf("%w: view %s: no unique columns (REFRESH ... CONCURRENTLY needs a unique index)", ErrDecl, v.Name)
	}
	for _, c := range v.Unique {
		if err := sqldb.Ident(c); err != nil {
			return fmt.Errorf("%w: view %s unique column: %w", ErrDecl, v.Name, err)
		}
	}
	return nil
}

// Create makes the view, populated, with its unique index, if absent. On SQLite, which
// has no materialized views, it is a table of the same name.
func (v View) Create(ctx context.Context, db sqldb.Execer, d sqldb.Dialect) error {
	if err := v.check(); err != nil {
		return err
	}
	create := `CREATE MATERIALIZED VIEW IF NOT EXISTS ` + v.Name + ` AS ` + v.Query
	if d == sqldb.SQLite {
		create = `CREATE TABLE IF NOT EXISTS ` + v.Name + ` AS ` + v.Query
	}
	for _, s := range []string{create,
		`CREATE UNIQUE INDEX IF NOT EXISTS ` + v.Name + `_unique ON ` + v.Name + ` (` + strings.Join(v.Unique, ", ") + `)`} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create view %s: %w", v.Name, err)
		}
	}
	return nil
}

// Refresh recomputes the view. On PostgreSQL it is REFRESH MATERIALIZED VIEW
// CONCURRENTLY; on SQLite the table is emptied and refilled in one transaction, so
// readers see the old or the new contents, never a mix.
func (v View) Refresh(ctx context.Context, db *sql.DB, d sqldb.Dialect) error {
	if err := v.check(); err != nil {
		return err
	}
	if d == sqldb.Postgres {
		if _, err := db.ExecContext(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY `+v.Name); err != nil {
			return fmt.Errorf("refresh view %s: %w", v.Name, err)
		}
		return nil
	}
	return sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+v.Name); err != nil {
			return fmt.Errorf("refresh view %s: %w", v.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+v.Name+` `+v.Query); err != nil {
			return fmt.Errorf("refresh view %s: %w", v.Name, err)
		}
		return nil
	})
}
