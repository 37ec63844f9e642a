package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Answer is how the server answered one send of one signal, as its client saw it.
type Answer uint8

const (
	// Acked: a 202 that did not list the signal among the rejected. The server holds it:
	// it must be stored, or counted dropped.
	Acked Answer = iota + 1
	// Refused: any other answer (503, 400, a rejection inside a 202). The server promises
	// it did not take the signal.
	Refused
	// Unsure: no answer (a transport error, a timeout, the server killed under the
	// request). The signal may be stored, once, or not at all.
	Unsure
)

// Ledger is what the clients of a fault test sent and how each send was answered, by
// event_id, for the check every fault test ends with (Check). Its methods may be called
// from any number of goroutines at once.
type Ledger struct {
	mu  sync.Mutex
	ids map[string]*sends
}

// sends counts the answers one event_id was given, over every time it was sent.
type sends struct{ acked, refused, unsure int }

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{ids: map[string]*sends{}} }

// Record notes one send of each of ids, answered a.
func (l *Ledger) Record(a Answer, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		s := l.ids[id]
		if s == nil {
			s = &sends{}
			l.ids[id] = s
		}
		switch a {
		case Acked:
			s.acked++
		case Refused:
			s.refused++
		case Unsure:
			s.unsure++
		default:
			panic(fmt.Sprintf("BUG: harness.Ledger.Record of answer %d", a))
		}
	}
}

// Collect records the answer to one POST /collect of the signals ids, in the request's
// order: err (no answer) makes every one Unsure; a 202 makes every one Acked but those
// its body lists among the rejected ({"errors":[{"index":i}]}), which are Refused; any
// other status makes every one Refused. It returns the indexes of ids not acknowledged
// (refused or unsure), for a client that sends them again.
func (l *Ledger) Collect(ids []string, status int, body []byte, err error) (again []int) {
	if err != nil {
		l.Record(Unsure, ids...)
		for i := range ids {
			again = append(again, i)
		}
		return again
	}
	rejected := map[int]bool{}
	if status == http.StatusAccepted {
		var ans struct {
			Errors []struct {
				Index int `json:"index"`
			} `json:"errors"`
		}
		json.Unmarshal(body, &ans) // a 202 without a readable body rejected nothing
		for _, e := range ans.Errors {
			rejected[e.Index] = true
		}
	}
	for i, id := range ids {
		if status == http.StatusAccepted && !rejected[i] {
			l.Record(Acked, id)
			continue
		}
		l.Record(Refused, id)
		again = append(again, i)
	}
	return again
}

// Acked returns the event_ids acknowledged at least once.
func (l *Ledger) Acked() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for id, s := range l.ids {
		if s.acked > 0 {
			out[id] = true
		}
	}
	return out
}

// Count returns how many event_ids were given a at least once, and how many were sent.
func (l *Ledger) Count(a Answer) (n, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.ids {
		if (a == Acked && s.acked > 0) || (a == Refused && s.refused > 0) || (a == Unsure && s.unsure > 0) {
			n++
		}
	}
	return n, len(l.ids)
}

// Outcome is what the server did with what the ledger's clients sent: what its store
// holds and what it counted, read once the pipeline is quiet.
type Outcome struct {
	// Stored is every event_id the store holds, with its number of copies (Copies).
	Stored map[string]int
	// Dropped is how many accepted signals the server counted dropped
	// (rung_signals_dropped_total, or the drop counter of the part under test).
	Dropped int
	// MayDrop, if not nil, names the event_ids the scenario may lose: the ones sent
	// while the fault held. rung counts drops but does not list them, so a test learns
	// which signals were dropped from its own scenario: an acknowledged signal missing
	// outside MayDrop is lost uncounted even when the counts agree. Nil: any
	// acknowledged signal may be among the Dropped.
	MayDrop func(id string) bool
	// RefusedMayLand is how many signals refused (never acknowledged nor unanswered)
	// may be stored anyway: in cluster mode the collector's publishes it was unsure of
	// (rung_stream_publish_unsure_total), which it answered 503. 0 everywhere else: a
	// refusal means not stored.
	RefusedMayLand int
	// Memory are the memory figures measured during the run, each against its bound.
	Memory []Memory
}

// Memory is one memory figure of a run and the bound it must stay under.
type Memory struct {
	What        string // what was measured: "live heap", "RSS"
	Used, Bound int64  // bytes
}

// Copies counts the copies of each event_id among rows: what Outcome.Stored takes.
func Copies[T any](rows []T, id func(T) string) map[string]int {
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[id(r)]++
	}
	return out
}

// Check is the check every fault test ends with. By event_id: every acknowledged signal
// is stored or counted dropped, the missing ones exactly as many as the drops counted
// (and all of them among MayDrop); nothing is stored that was never sent; nothing is
// stored twice; a refused signal is not stored (but for RefusedMayLand); and every memory
// figure is under its bound. It fails t listing each violation, with up to ten
// event_ids of each, and logs the tally otherwise.
func (l *Ledger) Check(t testing.TB, o Outcome) {
	t.Helper()
	problems, tally := l.check(o)
	if len(problems) > 0 {
		t.Errorf("fault check (%s):\n\t%s", tally, strings.Join(problems, "\n\t"))
		return
	}
	t.Logf("fault check: %s", tally)
}

// check returns the violations of o, one line each, and a one-line tally.
func (l *Ledger) check(o Outcome) (problems []string, tally string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var missing, uncounted, spurious, dup, landedRefused []string
	acked, unsure, refused := 0, 0, 0
	for id, s := range l.ids {
		copies := o.Stored[id]
		switch {
		case s.acked > 0:
			acked++
			if copies == 0 {
				missing = append(missing, id)
				if o.MayDrop != nil && !o.MayDrop(id) {
					uncounted = append(uncounted, id)
				}
			}
		case s.unsure > 0:
			unsure++
		default:
			refused++
			if copies > 0 {
				landedRefused = append(landedRefused, id)
			}
		}
	}
	for id, n := range o.Stored {
		if l.ids[id] == nil {
			spurious = append(spurious, id)
		}
		if n > 1 {
			dup = append(dup, id)
		}
	}
	add := func(format string, ids []string, args ...any) {
		slices.Sort(ids)
		problems = append(problems, fmt.Sprintf(format, args...)+": "+strings.Join(ids[:min(len(ids), 10)], " "))
	}
	if len(missing) != o.Dropped {
		add("%d acknowledged signals missing, %d counted dropped", missing, len(missing), o.Dropped)
	}
	if len(uncounted) > 0 {
		add("%d acknowledged signals missing that the scenario could not have dropped", uncounted, len(uncounted))
	}
	if len(spurious) > 0 {
		add("%d stored but never sent", spurious, len(spurious))
	}
	if len(dup) > 0 {
		add("%d stored more than once", dup, len(dup))
	}
	if len(landedRefused) > o.RefusedMayLand {
		add("%d refused signals stored, %d may be", landedRefused, len(landedRefused), o.RefusedMayLand)
	}
	for _, m := range o.Memory {
		if m.Used > m.Bound {
			problems = append(problems, fmt.Sprintf("%s %d KiB, over its bound of %d KiB", m.What, m.Used>>10, m.Bound>>10))
		}
	}
	tally = fmt.Sprintf("%d sent: %d acknowledged, %d unanswered, %d refused or rejected; %d stored, %d missing, %d counted dropped, %d refused stored",
		len(l.ids), acked, unsure, refused, len(o.Stored), len(missing), o.Dropped, len(landedRefused))
	for _, m := range o.Memory {
		tally += fmt.Sprintf("; %s %d KiB of %d KiB", m.What, m.Used>>10, m.Bound>>10)
	}
	return problems, tally
}
