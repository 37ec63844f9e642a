package place_test

import (
	"fmt"

	"github.com/rungdev/rung/tiers/place"
)

// Commission on closed deals by lead source: history, a flow, money-grade, business
// events that stay in this application and must not be lost.
func ExampleEngine_Place() {
	eng, err := place.New()
	if err != nil {
		panic(err)
	}
	res, err := eng.Place(place.Request{Answers: map[string]string{
		place.NeedsHistory:        place.Yes,
		place.FixedCadenceOK:      place.No,
		place.NeedsPastState:      place.No,
		place.MoneyGrade:          place.Yes,
		place.CrossService:        place.No,
		place.AnonymousHighVolume: place.No,
		place.LossOK:              place.No,
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Rung)
	fmt.Println(res.Verdict, "—", res.Cell.Mark)
	fmt.Println("skipped:", res.Skipped)
	// Output:
	// Tier 4 · Event log + rollups on L3 · Outbox
	// required — required
	// skipped: [hot_path needs_flow]
}

// The API says which question comes next; answers to questions that no longer apply
// are ignored.
func ExampleEngine_Progress() {
	eng, err := place.New()
	if err != nil {
		panic(err)
	}
	p := eng.Progress(map[string]string{place.NeedsHistory: place.No, place.MoneyGrade: place.Yes})
	fmt.Println("next:", p.Next)
	_, err = eng.Place(place.Request{Answers: map[string]string{place.NeedsHistory: place.No}})
	fmt.Println(err)
	// Output:
	// next: hot_path
	// 1 problem with the answers: hot_path: missing
}
