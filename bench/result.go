package bench

import (
	"sort"
	"time"
)

// Result is what a run did and saw. Its figures are filled when Run returns; the
// per-visitor records behind the truth stay unexported.
type Result struct {
	Config  Config
	Start   time.Time
	Elapsed time.Duration // the timed phase

	// Latency is of the timed requests after the ramp: in open loop from when each was
	// due, so a stall shows in every request it delayed (corrected for coordinated
	// omission); in closed loop from when it was sent. Service is always from the send.
	Latency, Service *Histogram
	// Series is the timed phase second by second; FinishSeries the finish phase's.
	Series, FinishSeries []Point

	Requests int64 // timed requests answered or failed
	Signals  int64 // signals in them
	Due      int64 // open loop: requests the schedule had due by the end of the timed phase
	Status   map[int]int64
	Errors   map[string]int64 // transport errors by kind
	Reasons  map[string]int64 // rejected signals by the server's reason

	// Over both phases: what the server accepted, rejected, and what met a transport
	// error after it may have arrived (unknown) or before it could (not sent).
	Accepted, Rejected, Unknown, NotSent int64
	// AcceptedTimed is what was accepted in the timed phase.
	AcceptedTimed int64
	// Inconsistent counts 202 answers whose accepted count disagrees with their errors.
	Inconsistent int64

	FinishRequests, FinishSignals int64         // the untimed phase that completes journeys
	FinishElapsed                 time.Duration // from the end of the timed phase to the last lane's end
	Unfinished                    int64         // visitors whose journeys it could not complete

	Model ModelRealized

	lanes []*lane
}

// ModelRealized is what the model drew for the visitors the run started, whatever
// became of their signals.
type ModelRealized struct {
	Visitors int64          `json:"visitors"`
	Sessions int64          `json:"sessions"` // simulated sessions, returns included
	Variants []VariantDrawn `json:"variants"`
}

// VariantDrawn is one variant's visitors and converters as drawn.
type VariantDrawn struct {
	Name       string `json:"name"`
	Visitors   int64  `json:"visitors"`
	Converters int64  `json:"converters"`
}

func (r *runner) result(t *ticker, elapsed, finished time.Duration) *Result {
	res := &Result{Config: *r.cfg, Start: r.start, Elapsed: elapsed, FinishElapsed: finished - elapsed,
		Latency: NewHistogram(), Service: NewHistogram(), Series: t.series, FinishSeries: t.finish,
		Status: map[int]int64{}, Errors: map[string]int64{}, Reasons: map[string]int64{}, lanes: r.lanes}
	res.Config.Progress = nil
	for _, v := range r.cfg.Model.Experiment.Variants {
		res.Model.Variants = append(res.Model.Variants, VariantDrawn{Name: v.Name})
	}
	for _, l := range r.lanes {
		res.Latency.Merge(l.steady)
		if r.cfg.Rate > 0 {
			res.Service.Merge(l.steadySvc)
		} else {
			res.Service.Merge(l.steady)
		}
		res.Requests += l.sent - l.finReq
		res.Signals += l.signals - l.finSignals
		res.FinishRequests += l.finReq
		res.FinishSignals += l.finSignals
		res.Accepted += l.accepted.Load()
		res.AcceptedTimed += l.accepted.Load() - l.finAccepted.Load()
		res.Rejected += l.rejected
		res.Unknown += l.unknown
		res.NotSent += l.notSent
		res.Inconsistent += l.inconsistent
		res.Unfinished += int64(len(l.heap))
		for code, n := range l.status {
			if n > 0 {
				res.Status[code] += n
			}
		}
		for k, v := range l.errs {
			res.Errors[k] += v
		}
		for k, v := range l.reasons {
			res.Reasons[k] += v
		}
		res.Model.Visitors += l.modelVisitors
		res.Model.Sessions += l.modelSessions
		for i, c := range l.modelVariant {
			res.Model.Variants[i].Visitors += c[0]
			res.Model.Variants[i].Converters += c[1]
		}
	}
	if r.cfg.Rate > 0 {
		res.Due = r.dueBy(elapsed)
	}
	return res
}

// Truth is what rung should report for the run's site, computed from the signals it
// accepted, in rung's terms. A run lasts minutes and rung stamps received_at itself, so
// rung sees each visitor's signals seconds apart: one session per visitor, whatever
// returns the model simulated (those need the 30-minute gap in real time). So a
// visitor with an accepted signal is one session, landing on the page of their first
// accepted pageview, converted if any accepted event is the goal; in the experiment,
// visitors count in the variant of their first accepted exposure, converted if a goal
// event was accepted after it.
type Truth struct {
	Sessions  int64          `json:"sessions"`
	Converted int64          `json:"converted"`
	Landing   []LandingTruth `json:"landing_pages"`
	Variants  []VariantCount `json:"variants"`
	// Uncertain visitors had a signal whose fate is unknown (a transport error after it
	// may have arrived): the counts may be off by up to this many.
	Uncertain int64 `json:"uncertain_visitors"`
}

// LandingTruth is one landing page's sessions and converting sessions.
type LandingTruth struct {
	Path      string `json:"path"`
	Sessions  int64  `json:"sessions"`
	Converted int64  `json:"converted"`
}

// VariantCount is one variant's visitors and converters.
type VariantCount struct {
	Name      string `json:"name"`
	Visitors  int64  `json:"visitors"`
	Converted int64  `json:"converted"`
}

// Truth folds the run's per-visitor records into the counts rung should report.
func (res *Result) Truth() Truth {
	pages := Pages()
	var t Truth
	byPage := make([][2]int64, len(pages)+1) // the last: sessions without a pageview
	for _, v := range res.Config.Model.Experiment.Variants {
		t.Variants = append(t.Variants, VariantCount{Name: v.Name})
	}
	for _, l := range res.lanes {
		for i := range l.visits {
			vi := &l.visits[i]
			if vi.flags&fUncertain != 0 {
				t.Uncertain++
			}
			if vi.flags&fAny == 0 {
				continue
			}
			conv := int64(vi.flags & fConverted >> 1)
			t.Sessions++
			t.Converted += conv
			p := len(pages)
			if vi.landing >= 0 {
				p = int(vi.landing)
			}
			byPage[p][0]++
			byPage[p][1] += conv
			if vi.variant >= 0 {
				t.Variants[vi.variant].Visitors++
				if vi.flags&fConvExp != 0 {
					t.Variants[vi.variant].Converted++
				}
			}
		}
	}
	for i, c := range byPage {
		if c[0] == 0 {
			continue
		}
		path := ""
		if i < len(pages) {
			path = pages[i]
		}
		t.Landing = append(t.Landing, LandingTruth{Path: path, Sessions: c[0], Converted: c[1]})
	}
	sort.Slice(t.Landing, func(i, j int) bool { return t.Landing[i].Path < t.Landing[j].Path })
	return t
}
