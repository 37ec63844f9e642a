package clickhouse

import (
	"context"
	"fmt"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// insert copies the String columns a run of rows at a time and the others whole: a
// batch of several runs and a part reads back as written, every row's values in its
// own row, and every row is counted (the flush's marker is stored); so does the next
// batch of the same size, whose runs are taken from the same memory.
func TestInsertInRuns(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	for w, n := range []int{1, stringRun, 2*stringRun + 37, 2*stringRun + 37} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			base := int64(1_765_000_000_000 + w*1_000_000)
			want := make([]schemas.Signal, n)
			for i := range want {
				s := fmt.Sprintf("%d-%d", w, i)
				want[i] = schemas.Signal{Type: schemas.TypeEvent, ReceivedAt: base + int64(i), EventAt: base + int64(i), Seq: uint64(i),
					Site: "site-" + s, AnonymousID: "visitor-" + s, EventID: "event-" + s, URL: "https://example.com/" + s,
					Path: "/" + s, Referrer: "ref-" + s, UTMSource: "src-" + s, UTMMedium: "med-" + s, UTMCampaign: "camp-" + s,
					UTMTerm: "term-" + s, UTMContent: "content-" + s, Name: "name-" + s, Props: `{"i":` + fmt.Sprint(i) + `}`,
					Bot: i%5 == 0}
				if i%3 == 0 {
					want[i].Value, want[i].HasValue = float64(i)+0.5, true
				}
			}
			if err := c.Write(ctx, &sink.Batch{Signals: want}); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := c.Signals(ctx, base, base+int64(n))
			if err != nil {
				t.Fatalf("Signals: %v", err)
			}
			if len(got) != n {
				t.Fatalf("read %d signals back, wrote %d", len(got), n)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("signal %d:\n got  %+v\n want %+v", i, got[i], want[i])
				}
			}
			landed, err := c.Landed(ctx, want)
			if err != nil {
				t.Fatalf("Landed: %v", err)
			}
			for i := range want {
				if counted, held := landed[sink.KeyOf(&want[i])]; !held || !counted {
					t.Fatalf("signal %d: held %v, counted %v; want both", i, held, counted)
				}
			}
		})
	}
}
