// Command tier5 walks through Tier 5 of the ladder, event sourcing, on rung's embedded
// default (a SQLite file): a deal is only ever appended to; its state is folded from
// the stream; a writer with a stale version is turned away; the deal is rebuilt as of
// the end of March; a projection bug is fixed and the state re-derived; and an event
// written before a schema change is upcast on read.
//
//	go run ./examples/tier5 [-db path]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/sourcing"
)

func main() {
	path := flag.String("db", filepath.Join(os.TempDir(), "rung-tier5.db"), "SQLite file (recreated on every run)")
	flag.Parse()
	if err := run(context.Background(), *path); err != nil {
		log.Fatal(err)
	}
}

type Deal struct {
	Stage       string `json:"stage"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Won         bool   `json:"won"`
}

func (d Deal) String() string {
	return fmt.Sprintf("stage=%s amount=%.2f %s won=%v", d.Stage, float64(d.AmountCents)/100, d.Currency, d.Won)
}

// deal_opened v1 had a bare amount_cents; v2 carries the currency.
var openedV1toV2 = sourcing.Upcaster{Type: "deal_opened", From: 1, Up: func(data json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		Stage       string `json:"stage"`
		AmountCents int64  `json:"amount_cents"`
	}
	if err := json.Unmarshal(data, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"stage": v1.Stage, "amount_cents": v1.AmountCents, "currency": "USD"})
}}

// projection folds a deal. Version 1 had a bug: a discount replaced the amount.
func projection(version int) sourcing.Projection[Deal] {
	return sourcing.Projection[Deal]{Name: "deal", Version: version, SnapshotEvery: 3,
		Init: func() Deal { return Deal{} },
		Apply: func(d Deal, r sourcing.Record) (Deal, error) {
			var e struct {
				Stage       string `json:"stage"`
				AmountCents int64  `json:"amount_cents"`
				Currency    string `json:"currency"`
				Won         bool   `json:"won"`
			}
			if err := json.Unmarshal(r.Data, &e); err != nil {
				return d, err
			}
			switch r.Type {
			case "deal_opened":
				d = Deal{Stage: e.Stage, AmountCents: e.AmountCents, Currency: e.Currency}
			case "deal_stage_changed":
				d.Stage = e.Stage
			case "deal_discounted":
				if version == 1 {
					d.AmountCents = e.AmountCents // the bug
				} else {
					d.AmountCents -= e.AmountCents
				}
			case "deal_closed":
				d.Stage, d.Won = "closed", e.Won
			}
			return d, nil
		}}
}

func run(ctx context.Context, path string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	db, err := sqldb.Open(ctx, sqldb.SQLite, path)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := sourcing.New(db, sqldb.SQLite, openedV1toV2)
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	fmt.Printf("ladder tier 5 — event sourcing (SQLite at %s)\n\n", path)

	at := func(month time.Month, day int) time.Time { return time.Date(2026, month, day, 15, 0, 0, 0, time.UTC) }
	ev := func(typ string, when time.Time, data string) sourcing.Event {
		return sourcing.Event{Type: typ, OccurredAt: when, Data: json.RawMessage(data)}
	}
	opened := ev("deal_opened", at(3, 2), `{"stage":"new","amount_cents":1850000}`)
	opened.SchemaVersion = 1 // written before the currency was added
	fmt.Println("1. Events are the only writes.")
	v, err := store.Append(ctx, "deal-42", 0, opened,
		ev("deal_stage_changed", at(3, 9), `{"stage":"demo"}`),
		ev("deal_discounted", at(3, 20), `{"amount_cents":150000}`))
	if err != nil {
		return err
	}
	if v, err = store.Append(ctx, "deal-42", v,
		ev("deal_stage_changed", at(4, 6), `{"stage":"proposal"}`),
		ev("deal_closed", at(4, 14), `{"won":true}`)); err != nil {
		return err
	}
	fmt.Printf("   deal-42 is at version %d\n", v)
	if _, err := db.ExecContext(ctx, `UPDATE stream_events SET data = '{}' WHERE version = 1`); err != nil {
		fmt.Printf("   an UPDATE is refused: %v\n", err)
	}

	fmt.Println("\n2. Optimistic concurrency: a writer that read version 3 is turned away.")
	_, err = store.Append(ctx, "deal-42", 3, ev("deal_discounted", at(4, 7), `{"amount_cents":1}`))
	var conflict *sourcing.ConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("stale append was not refused: %v", err)
	}
	fmt.Printf("   %v\n", err)

	fmt.Println("\n3. State is folded from the stream (v1 deal_opened upcast to v2 on read).")
	buggy := projection(1)
	now, err := sourcing.Load(ctx, store, buggy, "deal-42")
	if err != nil {
		return err
	}
	fmt.Printf("   now:          %s  (replayed %d, snapshot at %d)\n", now.Value, now.Replayed, now.Snapshot)
	eom := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
	then, err := sourcing.AsOf(ctx, store, buggy, "deal-42", eom)
	if err != nil {
		return err
	}
	fmt.Printf("   as of Mar 31: %s\n", then.Value)
	fmt.Println("   ...the amount is wrong: projection v1 applied the discount as the new amount.")

	fmt.Println("\n4. Fix the projection (version 2) and re-derive: v1 snapshots are ignored.")
	fixed := projection(2)
	if now, err = sourcing.Load(ctx, store, fixed, "deal-42"); err != nil {
		return err
	}
	fmt.Printf("   now:          %s  (replayed %d, snapshot at %d)\n", now.Value, now.Replayed, now.Snapshot)
	if then, err = sourcing.AsOf(ctx, store, fixed, "deal-42", eom); err != nil {
		return err
	}
	fmt.Printf("   as of Mar 31: %s  (from snapshot %d)\n", then.Value, then.Snapshot)
	again, err := sourcing.Load(ctx, store, fixed, "deal-42")
	if err != nil {
		return err
	}
	fmt.Printf("   reload:       replayed %d past the snapshot at %d\n", again.Replayed, again.Snapshot)
	return nil
}
