// Command tier1 walks through Tier 1 of the ladder, live query on current state, on
// rung's embedded default (a SQLite file): contacts counted on demand, the index check
// that names what is missing, and the limit of the tier — deletes erase the past.
//
//	go run ./examples/tier1 [-db path]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/live"
)

func main() {
	path := flag.String("db", filepath.Join(os.TempDir(), "rung-tier1.db"), "SQLite file (recreated on every run)")
	flag.Parse()
	if err := run(context.Background(), *path); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	d := sqldb.SQLite
	db, err := sqldb.Open(ctx, d, path)
	if err != nil {
		return err
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		if err == nil {
			_, err = db.ExecContext(ctx, q, args...)
		}
	}
	exec(`CREATE TABLE contacts (id INTEGER PRIMARY KEY, status TEXT NOT NULL, created_at TIMESTAMP NOT NULL)`)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	april := march.AddDate(0, 1, 0)
	for i := range 12 {
		status := "active"
		if i%4 == 0 {
			status = "archived"
		}
		exec(`INSERT INTO contacts (status, created_at) VALUES (?, ?)`, status, d.Time(march.AddDate(0, 0, 2*i)))
	}
	if err != nil {
		return err
	}
	fmt.Printf("ladder tier 1 — live query on current state (SQLite at %s)\n\n", path)

	active := live.Count("contacts", live.Eq("status", "active"))
	fmt.Println("1. Index what you filter on.")
	var mi *live.MissingIndexError
	if err := active.Check(ctx, db, d); errors.As(err, &mi) {
		fmt.Printf("   check: %v\n", err)
		for _, ddl := range mi.DDL() {
			exec(ddl)
			fmt.Printf("   applied: %s\n", ddl)
		}
	} else if err != nil {
		return err
	}
	if err := active.Check(ctx, db, d); err != nil {
		return err
	}
	fmt.Println("   check: ok")

	fmt.Println("\n2. Just ask the database.")
	n, err := active.Run(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   active contacts now: %g\n", n)
	inMarch := live.Count("contacts", live.Ge("created_at", march), live.Lt("created_at", april))
	before, err := inMarch.Run(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   contacts created in March: %g\n", before)

	fmt.Println("\n3. The limit: no history. Three March contacts are deleted in May.")
	exec(`DELETE FROM contacts WHERE id IN (2, 5, 7)`)
	after, err := inMarch.Run(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   \"how many contacts were created last March?\" now answers %g, not %g.\n", after, before)
	fmt.Println("   The table only knows now. Climb to Tier 3 (snapshots) or Tier 4 (events) for the past.")
	return nil
}
