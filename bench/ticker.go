package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The phases of a run: timed (measured) and finish (completing the journeys started).
const (
	PhaseTimed  = "timed"
	PhaseFinish = "finish"
)

// Point is one second of the run.
type Point struct {
	T        float64 `json:"t"` // seconds since the start, at the end of the interval
	Phase    string  `json:"phase"`
	Target   float64 `json:"target_rps,omitempty"` // open loop: the scheduled rate
	Requests float64 `json:"rps"`                  // answered requests/s
	Accepted float64 `json:"accepted_sps"`         // signals accepted/s
	Non202   int64   `json:"non_202"`
	Errors   int64   `json:"errors"`
	// Latency of the requests answered in the interval, in ms; in open loop, from when
	// each was due (corrected for coordinated omission). The finish phase has none.
	P50  float64     `json:"p50_ms"`
	P90  float64     `json:"p90_ms"`
	P99  float64     `json:"p99_ms"`
	Max  float64     `json:"max_ms"`
	Proc []ProcPoint `json:"processes,omitempty"`
}

// ProcPoint is one process's CPU (percent of one core) and resident memory in an interval.
type ProcPoint struct {
	Name   string  `json:"name"`
	CPU    float64 `json:"cpu_pct"`
	RSSMiB float64 `json:"rss_mib"`
}

// ticker samples the run every second: it owns the series of both phases and the
// progress line.
type ticker struct {
	r      *runner
	sec    *Histogram
	series []Point // the timed phase
	finish []Point // the finish phase
	lastT  time.Duration
	last   [4]int64 // completed, accepted, failed, non202: the phase's own
	procs  []*proc

	mu        sync.Mutex // sample runs under it
	timedOver bool
}

func newTicker(r *runner) *ticker {
	t := &ticker{r: r, sec: NewHistogram()}
	t.procs = append(t.procs, newProc("bench", os.Getpid()))
	for _, w := range r.cfg.Watch {
		t.procs = append(t.procs, newProc(w.Name, w.PID))
	}
	for _, p := range t.procs {
		p.sample(time.Now())
	}
	return t
}

// run samples once a second, and runs the watchdog, until stop is closed.
func (t *ticker) run(stop <-chan struct{}) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			t.r.watchdog()
			t.mu.Lock()
			t.sample(false)
			t.mu.Unlock()
		}
	}
}

// endTimed takes the last sample of the timed phase; its series ends there, and the
// finish phase's begins.
func (t *ticker) endTimed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample(true)
	t.timedOver = true
	// The finish phase counts from here: what lanes that ended their timed phase early
	// sent meanwhile is in the totals, not in its first second.
	t.lastT, t.last = t.r.clock(), t.counts()
	if t.r.cfg.Progress != nil && t.r.cfg.ProgressCR {
		fmt.Fprintln(t.r.cfg.Progress)
	}
}

// endFinish takes the last sample of the finish phase, once every lane is done.
func (t *ticker) endFinish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample(true)
	if t.r.cfg.Progress != nil && t.r.cfg.ProgressCR && len(t.finish) > 0 {
		fmt.Fprintln(t.r.cfg.Progress)
	}
}

// counts are the current phase's completed, accepted, failed and non-202 requests;
// failed and non-202 are of both phases.
func (t *ticker) counts() [4]int64 {
	var c [4]int64
	for _, l := range t.r.lanes {
		fc, fa := l.finCompleted.Load(), l.finAccepted.Load()
		if t.timedOver {
			c[0] += fc
			c[1] += fa
		} else {
			c[0] += l.completed.Load() - fc
			c[1] += l.accepted.Load() - fa
		}
		c[2] += l.failed.Load()
		c[3] += l.non202.Load()
	}
	return c
}

func (t *ticker) sample(final bool) {
	now := time.Now()
	el := t.r.clock()
	t.sec.Reset()
	for _, l := range t.r.lanes {
		l.mu.Lock()
		t.sec.Merge(l.cur)
		l.cur.Reset()
		l.mu.Unlock()
	}
	c := t.counts()
	dt := (el - t.lastT).Seconds()
	if final && dt < 0.2 {
		return // a sliver after the last whole second: its rates would be noise
	}
	p := Point{T: el.Seconds(), Target: t.r.cfg.targetRate(el - (el-t.lastT)/2),
		Requests: float64(c[0]-t.last[0]) / dt, Accepted: float64(c[1]-t.last[1]) / dt,
		Errors: c[2] - t.last[2], Non202: c[3] - t.last[3]}
	if t.timedOver {
		p.Phase = PhaseFinish // untimed: no latency figures
	} else {
		p.Phase = PhaseTimed
		p.P50, p.P90, p.P99, p.Max = ms(t.sec.Quantile(0.5)), ms(t.sec.Quantile(0.9)), ms(t.sec.Quantile(0.99)), ms(t.sec.Max())
	}
	for _, pr := range t.procs {
		if pp, ok := pr.sample(now); ok {
			p.Proc = append(p.Proc, pp)
		}
	}
	if t.timedOver {
		t.finish = append(t.finish, p)
	} else {
		t.series = append(t.series, p)
	}
	t.lastT, t.last = el, c
	if w := t.r.cfg.Progress; w != nil {
		end := "\n"
		if t.r.cfg.ProgressCR {
			end = "\r"
		}
		line := fmt.Sprintf("%6.1fs  %-6s %9s req  %8.0f req/s", p.T, p.Phase, fmtInt(c[0]), p.Requests)
		if p.Target > 0 {
			line += fmt.Sprintf(" (target %.0f)", p.Target)
		}
		line += fmt.Sprintf("  %9.0f signals/s accepted  non-202 %s  errors %s", p.Accepted, fmtInt(c[3]), fmtInt(c[2]))
		if p.Phase == PhaseTimed {
			line += "  p99 " + fmtMs(p.P99)
		} else {
			line += "  completing the journeys started"
		}
		fmt.Fprint(w, line+"   "+end)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
}

// proc samples a process's CPU time and resident memory from /proc.
type proc struct {
	name    string
	pid     int
	lastCPU time.Duration
	lastAt  time.Time
	ok      bool
}

func newProc(name string, pid int) *proc { return &proc{name: name, pid: pid} }

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

func (p *proc) sample(now time.Time) (ProcPoint, bool) {
	cpu, rss, err := readProc(p.pid)
	if err != nil {
		p.ok = false
		return ProcPoint{}, false
	}
	pt := ProcPoint{Name: p.name, RSSMiB: float64(rss) / (1 << 20)}
	if p.ok {
		pt.CPU = 100 * float64(cpu-p.lastCPU) / float64(now.Sub(p.lastAt))
	}
	first := !p.ok
	p.lastCPU, p.lastAt, p.ok = cpu, now, true
	return pt, !first
}

// readProc returns a process's user+system CPU time and resident set size.
func readProc(pid int) (cpu time.Duration, rss int64, err error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu of process %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("read cpu of process %d: short stat line", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return time.Duration(ut+st) * clockTick, pages * int64(os.Getpagesize()), nil
}
