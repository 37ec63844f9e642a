package preagg

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"

	"github.com/rungdev/rung/schemas"
)

// workload makes benchmark traffic shaped like a site's: visitors arrive evenly over
// the span, come for one to three sessions of one to eight signals, land on pages and
// utm campaigns with a skewed popularity, and one in four is in an experiment. Signals
// are made an hour of arrivals at a time, sorted by time within it, and handed to emit.
type workload struct {
	r        *rand.Rand
	paths    []string
	utms     [][3]string
	sites    []string
	visitor  int
	seq      int
	sessions int
}

func newWorkload(seed uint64) *workload {
	w := &workload{r: rand.New(rand.NewPCG(seed, 1)), sites: []string{"shop.example", "blog.example", "docs.example"}}
	for i := 0; i < 60; i++ {
		w.paths = append(w.paths, "/p/"+strconv.Itoa(i))
	}
	for _, s := range []string{"", "google", "newsletter", "twitter", "partner"} {
		for _, m := range []string{"", "cpc", "email"} {
			w.utms = append(w.utms, [3]string{s, m, []string{"", "spring", "launch"}[len(s)%3]})
		}
	}
	return w
}

// skewed picks an index in [0, n) with popularity falling like 1/(i+1).
func (w *workload) skewed(n int) int {
	x := w.r.Float64()
	return min(n-1, int(float64(n)*x*x*x))
}

// hour generates the signals of visitors arriving in the hour starting at start, about
// perHour of them, sorted by time.
func (w *workload) hour(start int64, perHour int, emit func([]schemas.Signal)) {
	var out []schemas.Signal
	n := perHour/2 + w.r.IntN(perHour+1)
	for i := 0; i < n; i++ {
		w.visitor++
		anon := "a" + strconv.Itoa(w.visitor)
		site := w.sites[w.skewed(len(w.sites))]
		t := start + w.r.Int64N(hour)
		variant := ""
		if w.r.IntN(4) == 0 {
			variant = []string{"control", "b"}[w.r.IntN(2)]
		}
		for s, ns := 0, 1+w.r.IntN(3); s < ns; s++ {
			if s > 0 {
				t += timeout + w.r.Int64N(6*hour)
			}
			w.sessions++
			utm := w.utms[w.skewed(len(w.utms))]
			for k, nk := 0, 1+w.r.IntN(8); k < nk; k++ {
				if k > 0 {
					t += second + w.r.Int64N(3*minute)
				}
				w.seq++
				sig := schemas.Signal{Site: site, AnonymousID: anon, ReceivedAt: t, EventID: "e" + strconv.Itoa(w.seq)}
				switch x := w.r.IntN(100); {
				case x < 60 || k == 0:
					sig.Type, sig.Path = schemas.TypePageview, w.paths[w.skewed(len(w.paths))]
					sig.URL = "https://" + site + sig.Path
					if k == 0 {
						sig.UTMSource, sig.UTMMedium, sig.UTMCampaign = utm[0], utm[1], utm[2]
					}
				case x < 85:
					sig.Type, sig.Name = schemas.TypeEvent, "scroll"
					if x < 70 {
						sig.Name = DefaultGoal
					}
				default:
					if variant == "" {
						sig.Type, sig.Name = schemas.TypeEvent, "click"
					} else {
						sig.Type, sig.Experiment, sig.Variant = schemas.TypeExposure, "hero", variant
					}
				}
				out = append(out, sig)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt < out[j].ReceivedAt })
	emit(out)
}

// stream generates hours of arrivals from start and hands emit the signals in time
// order, a batch at a time: an hour's arrivals come back for sessions up to a day
// later, so signals are held until no later hour can precede them.
func (w *workload) stream(start int64, hours, perHour int, emit func([]schemas.Signal) bool) {
	var pending []schemas.Signal
	for h := 0; h <= hours; h++ {
		at := start + int64(h)*hour
		if h < hours {
			w.hour(at, perHour, func(s []schemas.Signal) { pending = append(pending, s...) })
		} else {
			at = math.MaxInt64
		}
		sort.SliceStable(pending, func(i, j int) bool { return pending[i].ReceivedAt < pending[j].ReceivedAt })
		n := sort.Search(len(pending), func(i int) bool { return pending[i].ReceivedAt >= at })
		if n > 0 && !emit(pending[:n]) {
			return
		}
		pending = append(pending[:0], pending[n:]...)
	}
}

// signals returns the first n signals of the stream from start.
func (w *workload) signals(start int64, n, perHour int) []schemas.Signal {
	var all []schemas.Signal
	w.stream(start, 1<<20, perHour, func(s []schemas.Signal) bool {
		all = append(all, s...)
		return len(all) < n
	})
	return all[:n]
}
