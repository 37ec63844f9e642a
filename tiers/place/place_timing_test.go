package place

import (
	"io"
	"testing"
)

// BenchmarkPlace measures one placement of the commission example, with a symptom and
// a current build: what POST /v1/place costs beyond decoding.
func BenchmarkPlace(b *testing.B) {
	e := newEngine(b)
	req := Request{
		Answers:  answers(b, "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=no loss_ok=no"),
		Symptoms: []string{"dual_writes"},
		Current:  &Current{Tier: 4, Level: LevelInProcess},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Place(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPage measures rendering the result page, the heaviest thing /place does.
func BenchmarkPage(b *testing.B) {
	e := newEngine(b)
	req := Request{Answers: answers(b, "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=no loss_ok=no")}
	res, err := e.Place(req)
	if err != nil {
		b.Fatal(err)
	}
	var d pageData
	e.fillAnswered(&d, e.Progress(req.Answers))
	e.fillResult(&d, &res, req)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.page.Execute(io.Discard, d); err != nil {
			b.Fatal(err)
		}
	}
}
