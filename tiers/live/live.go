// Package live is Tier 1 of the ladder, "live query on current state": the value is
// computed on demand from the rows as they are now. It owns two things: aggregate
// helpers (count, sum, avg, min, max over the rows a filter selects) and Check, which
// names the index a filtered column is missing, because at this tier the right index
// is the whole setup.
//
// What this tier cannot do: it has no history. A delete or an edit erases the past,
// so "how many contacts were created last March" is answered with whatever survives
// today, not with what was true then.
package live

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Agg is an aggregate function.
type Agg string

const (
	CountAgg Agg = "count"
	SumAgg   Agg = "sum"
	AvgAgg   Agg = "avg"
	MinAgg   Agg = "min"
	MaxAgg   Agg = "max"
)

// Cond is one filter term: Column Op Value. Op is one of = <> < <= > >=.
type Cond struct {
	Column string
	Op     string
	Value  any
}

// Eq, Ge and Lt build the common filter terms.
func Eq(col string, v any) Cond { return Cond{col, "=", v} }
func Ge(col string, v any) Cond { return Cond{col, ">=", v} }
func Lt(col string, v any) Cond { return Cond{col, "<", v} }

// Query is one aggregate over the current rows of a table.
type Query struct {
	Table  string
	Agg    Agg
	Column string // ignored by count
	Where  []Cond
}

// Count counts the rows of table that match where.
func Count(table string, where ...Cond) Query {
	return Query{Table: table, Agg: CountAgg, Where: where}
}

// Sum adds up column over the rows of table that match where.
func Sum(table, column string, where ...Cond) Query {
	return Query{Table: table, Agg: SumAgg, Column: column, Where: where}
}

var ops = []string{"=", "<>", "<", "<=", ">", ">="}

// SQL renders q for d, with its arguments.
func (q Query) SQL(d sqldb.Dialect) (string, []any, error) {
	if err := sqldb.Ident(q.Table); err != nil {
		return "", nil, fmt.Errorf("%w: table: %w", ErrQuery, err)
	}
	var expr string
	switch q.Agg {
	case CountAgg:
		expr = "count(*)"
	case SumAgg, AvgAgg, MinAgg, MaxAgg:
		if err := sqldb.Ident(q.Column); err != nil {
			return "", nil, fmt.Errorf("%w: %s of %s: column: %w", ErrQuery, q.Agg, q.Table, err)
		}
		expr = fmt.Sprintf("coalesce(%s(%s), 0)", q.Agg, q.Column)
	default:
		return "", nil, fmt.Errorf("%w: aggregate %q (want count, sum, avg, min or max)", ErrQuery, q.Agg)
	}
	var b strings.Builder
	b.WriteString("SELECT " + expr + " FROM " + q.Table)
	args := make([]any, 0, len(q.Where))
	for i, c := range q.Where {
		if err := sqldb.Ident(c.Column); err != nil {
			return "", nil, fmt.Errorf("%w: %s filter %d: %w", ErrQuery, q.Table, i, err)
		}
		if !slices.Contains(ops, c.Op) {
			return "", nil, fmt.Errorf("%w: %s filter on %s: operator %q (want one of %s)", ErrQuery, q.Table, c.Column, c.Op, strings.Join(ops, " "))
		}
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(c.Column + " " + c.Op + " ?")
		v := c.Value
		if t, ok := v.(time.Time); ok {
			v = d.Time(t)
		}
		args = append(args, v)
	}
	return d.Rebind(b.String()), args, nil
}

// Run computes q now. Sums of no rows are 0.
func (q Query) Run(ctx context.Context, db sqldb.Querier, d sqldb.Dialect) (float64, error) {
	s, args, err := q.SQL(d)
	if err != nil {
		return 0, err
	}
	var v float64
	if err := db.QueryRowContext(ctx, s, args...).Scan(&v); err != nil {
		return 0, fmt.Errorf("live %s of %s: %w", q.Agg, q.Table, err)
	}
	return v, nil
}

// MissingIndexError names the filtered columns no index can serve, and the DDL that
// fixes it.
type MissingIndexError struct {
	Table   string
	Columns []string
}

func (e *MissingIndexError) Error() string {
	return fmt.Sprintf("%s is filtered on %s with no index to serve it; add: %s",
		e.Table, strings.Join(e.Columns, ", "), strings.Join(e.DDL(), "; "))
}

// Is makes errors.Is(err, ErrMissingIndex) true.
func (e *MissingIndexError) Is(target error) bool { return target == ErrMissingIndex }

// DDL is one CREATE INDEX statement per missing column.
func (e *MissingIndexError) DDL() []string {
	out := make([]string, len(e.Columns))
	for i, c := range e.Columns {
		out[i] = fmt.Sprintf("CREATE INDEX %s_%s_idx ON %s (%s)", e.Table, c, e.Table, c)
	}
	return out
}

// Check reports, as a *MissingIndexError, every column q filters on that no index on its
// table can serve. A column is served by an index whose columns before it are all
// filtered with "=" in q (so (status, created_at) serves status = ? AND created_at >= ?).
func (q Query) Check(ctx context.Context, db sqldb.Querier, d sqldb.Dialect) error {
	if _, _, err := q.SQL(d); err != nil {
		return err
	}
	idx, err := Indexes(ctx, db, d, q.Table)
	if err != nil {
		return err
	}
	eq := map[string]bool{}
	for _, c := range q.Where {
		if c.Op == "=" {
			eq[c.Column] = true
		}
	}
	var missing []string
	for _, c := range q.Where {
		if !served(idx, c.Column, eq) && !slices.Contains(missing, c.Column) {
			missing = append(missing, c.Column)
		}
	}
	if len(missing) > 0 {
		return &MissingIndexError{Table: q.Table, Columns: missing}
	}
	return nil
}

func served(idx [][]string, col string, eq map[string]bool) bool {
	for _, cols := range idx {
		for _, c := range cols {
			if c == col {
				return true
			}
			if !eq[c] {
				break
			}
		}
	}
	return false
}

// Indexes lists the indexes on table (in the current schema on PostgreSQL), each as its
// key columns in order. A SQLite INTEGER PRIMARY KEY counts as an index on its column.
func Indexes(ctx context.Context, db sqldb.Querier, d sqldb.Dialect, table string) ([][]string, error) {
	if err := sqldb.Ident(table); err != nil {
		return nil, fmt.Errorf("%w: table: %w", ErrQuery, err)
	}
	var exists bool
	var q string
	if d == sqldb.Postgres {
		q = `SELECT count(*) > 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1 AND n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')`
	} else {
		q = `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`
	}
	if err := db.QueryRowContext(ctx, q, table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", table, err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: no table %q", ErrQuery, table)
	}
	if d == sqldb.Postgres {
		q = `SELECT ic.relname, a.attname
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE t.relname = $1 AND n.nspname = current_schema() AND i.indpred IS NULL
ORDER BY ic.relname, k.ord`
	} else {
		q = `SELECT il.name, ii.name
FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii
WHERE il.partial = 0
ORDER BY il.name, ii.seqno`
	}
	rows, err := db.QueryContext(ctx, q, table)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out [][]string
	last := ""
	for rows.Next() {
		var name, col string
		if err := rows.Scan(&name, &col); err != nil {
			return nil, fmt.Errorf("list indexes of %s: %w", table, err)
		}
		if name != last || len(out) == 0 {
			out = append(out, nil)
			last = name
		}
		out[len(out)-1] = append(out[len(out)-1], col)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table, err)
	}
	if d == sqldb.SQLite {
		// A lone INTEGER PRIMARY KEY is the rowid itself: indexed, but not in index_list.
		var n int
		var typ string
		err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(max(name), ''), coalesce(upper(max(type)), '')
FROM pragma_table_info(?) WHERE pk > 0`, table).Scan(&n, &last, &typ)
		if err != nil {
			return nil, fmt.Errorf("read primary key of %s: %w", table, err)
		}
		if n == 1 && typ == "INTEGER" {
			out = append(out, []string{last})
		}
	}
	return out, nil
}
