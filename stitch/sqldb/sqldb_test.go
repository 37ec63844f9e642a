package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

func TestRebind(t *testing.T) {
	cases := []struct{ in, pg string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"VALUES (?, ?, ?)", "VALUES ($1, $2, $3)"},
	}
	for _, c := range cases {
		if got := sqldb.Postgres.Rebind(c.in); got != c.pg {
			t.Errorf("postgres %q = %q, want %q", c.in, got, c.pg)
		}
		if got := sqldb.SQLite.Rebind(c.in); got != c.in {
			t.Errorf("sqlite %q = %q, want it unchanged", c.in, got)
		}
	}
}

func TestValidateAndIdent(t *testing.T) {
	if err := sqldb.Dialect("mysql").Validate(); !errors.Is(err, sqldb.ErrDialect) {
		t.Errorf("mysql: %v", err)
	}
	for _, ok := range []string{"events", "sales_rollups", "a1"} {
		if err := sqldb.Ident(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1a", "Events", "a-b", "a b", "a;drop", `"a"`, string(make([]byte, 64))} {
		if err := sqldb.Ident(bad); !errors.Is(err, sqldb.ErrIdent) {
			t.Errorf("%q: %v, want ErrIdent", bad, err)
		}
	}
}

// Times round-trip at microsecond precision on both backends, compare as instants in
// SQL, and the SQL period label agrees with the Go one (the incremental rollup computes
// labels in Go, the recompute in SQL).
func TestTimesAndPeriodsAgree(t *testing.T) {
	ctx := context.Background()
	times := []time.Time{
		time.Date(2026, 3, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 4, 1, 1, 30, 0, 123456789, time.FixedZone("CEST", 2*3600)), // still March 31 in UTC
		time.Date(2025, 12, 31, 23, 0, 0, 500, time.UTC),
	}
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			d := b.Dialect
			if _, err := b.DB.ExecContext(ctx, `CREATE TABLE ts (i INTEGER PRIMARY KEY, at `+d.TimeType()+` NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			for i, at := range times {
				if _, err := b.DB.ExecContext(ctx, d.Rebind(`INSERT INTO ts VALUES (?, ?)`), i, d.Time(at)); err != nil {
					t.Fatal(err)
				}
			}
			for i, at := range times {
				var got sqldb.Time
				var hour, day, month string
				err := b.DB.QueryRowContext(ctx, d.Rebind(`SELECT at, `+d.Period(sqldb.Hour, "at")+`, `+d.Period(sqldb.Day, "at")+`, `+
					d.Period(sqldb.Month, "at")+` FROM ts WHERE i = ?`), i).Scan(&got, &hour, &day, &month)
				if err != nil {
					t.Fatal(err)
				}
				if want := at.UTC().Truncate(time.Microsecond); !got.Equal(want) {
					t.Errorf("%d: stored %v, read %v", i, want, got.Time)
				}
				if hour != sqldb.Hour.Label(at) || day != sqldb.Day.Label(at) || month != sqldb.Month.Label(at) {
					t.Errorf("%d (%v): SQL labels %s %s %s, Go labels %s %s %s", i, at.UTC(), hour, day, month,
						sqldb.Hour.Label(at), sqldb.Day.Label(at), sqldb.Month.Label(at))
				}
			}
			// Ordering and comparison in SQL follow the instants.
			var n int
			if err := b.DB.QueryRowContext(ctx, d.Rebind(`SELECT count(*) FROM ts WHERE at < ?`), d.Time(times[1])).Scan(&n); err != nil || n != 3 {
				t.Errorf("count before April: %d (%v), want 3", n, err)
			}
			var latest sqldb.Time
			if err := b.DB.QueryRowContext(ctx, `SELECT max(at) FROM ts`).Scan(&latest); err != nil || !latest.Equal(times[1]) {
				t.Errorf("max = %v (%v), want %v", latest.Time, err, times[1])
			}
			// Unique violations are recognised on both drivers.
			_, err := b.DB.ExecContext(ctx, d.Rebind(`INSERT INTO ts VALUES (?, ?)`), 0, d.Time(times[0]))
			if !sqldb.IsUniqueViolation(err) {
				t.Errorf("duplicate key: %v not recognised as a unique violation", err)
			}
			if sqldb.IsUniqueViolation(errors.New("x")) {
				t.Error("a plain error taken for a unique violation")
			}
		})
	}
}

func FuzzTimeScan(f *testing.F) {
	for _, s := range []string{"2026-03-31 23:59:59.999999+00:00", "2026-03-31", "2026-03-31T10:00:00Z", "", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v sqldb.Time
		if err := v.Scan(s); err != nil {
			return
		}
		// Whatever parses must survive our own encoding.
		var back sqldb.Time
		enc := sqldb.SQLite.Time(v.Time)
		if err := back.Scan(enc); err != nil {
			t.Fatalf("%q parsed to %v, whose encoding %q does not parse: %v", s, v.Time, enc, err)
		}
		if !back.Equal(v.Time.Truncate(time.Microsecond)) && v.Year() >= 0 && v.Year() <= 9999 {
			t.Fatalf("%q: %v → %q → %v", s, v.Time, enc, back.Time)
		}
	})
}
