package place

import (
	"fmt"
	"html/template"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Engine places stats on the ladder. It holds the questions, the cards, the matrix and
// the page templates, all built by New and never changed after, so one Engine is safe
// for concurrent use.
type Engine struct {
	questions []Question
	qindex    map[string]int
	matrix    *Matrix
	cards     []*Card // the ladder in order: tiers 1–5, then levels in matrix order
	byID      map[string]*Card
	symptoms  []Symptom // in card order
	symByID   map[string]Symptom
	page      *template.Template
}

// New builds an engine from rung's embedded content. It fails only if that content is
// broken (a missing snippet, a template that does not parse, a symptom id used twice).
func New() (*Engine, error) {
	e := &Engine{
		questions: questions(),
		qindex:    map[string]int{},
		matrix:    newMatrix(),
		byID:      map[string]*Card{},
		symByID:   map[string]Symptom{},
	}
	for i, q := range e.questions {
		e.qindex[q.ID] = i
	}
	e.cards = cards()
	for _, c := range e.cards {
		if _, dup := e.byID[c.ID]; dup {
			return nil, fmt.Errorf("load cards: card %q defined twice", c.ID)
		}
		e.byID[c.ID] = c
		for i := range c.Avoidance {
			s := &c.Avoidance[i]
			s.Rung = c.ID
			if _, dup := e.symByID[s.ID]; dup {
				return nil, fmt.Errorf("load cards: symptom %q defined twice", s.ID)
			}
			e.symByID[s.ID] = *s
			e.symptoms = append(e.symptoms, *s)
		}
		for _, steps := range [][]Step{c.Build, c.BuildSignals} {
			for i := range steps {
				if err := loadSnippet(&steps[i]); err != nil {
					return nil, fmt.Errorf("load card %s: %w", c.ID, err)
				}
			}
		}
	}
	for _, c := range e.cards {
		for _, t := range c.Triggers {
			if t.Climb != "" && e.byID[t.Climb] == nil {
				return nil, fmt.Errorf("load card %s: trigger climbs to unknown card %q", c.ID, t.Climb)
			}
		}
	}
	page, err := parsePage(e.byID)
	if err != nil {
		return nil, err
	}
	e.page = page
	return e, nil
}

// Questions returns the questionnaire in the order it is asked.
func (e *Engine) Questions() []Question { return slices.Clone(e.questions) }

// Matrix returns the tier × level matrix.
func (e *Engine) Matrix() *Matrix { return e.matrix }

// Cards returns every card: tiers 1–5, then the levels in the matrix's column order.
func (e *Engine) Cards() []*Card { return slices.Clone(e.cards) }

// Card returns the card with the given id ("tier3", "outbox", ...).
func (e *Engine) Card(id string) (*Card, bool) {
	c, ok := e.byID[id]
	return c, ok
}

// Symptoms returns every symptom a user can tick, in ladder order.
func (e *Engine) Symptoms() []Symptom { return slices.Clone(e.symptoms) }

// TierCard returns the card of tier n (1–5).
func (e *Engine) TierCard(n int) *Card { return e.byID[TierID(n)] }

// Request is what a user answers: yes or no to each applicable question, optionally the
// stat's name, the symptoms they recognise, and where the stat lives today.
type Request struct {
	// Stat names the stat being placed ("landing-page CVR"); the result repeats it.
	Stat     string            `json:"stat,omitempty"`
	Answers  map[string]string `json:"answers"`
	Symptoms []string          `json:"symptoms,omitempty"`
	Current  *Current          `json:"current,omitempty"`
}

// Current is where a stat is built today: a tier and, from Tier 4 up, optionally its
// event level.
type Current struct {
	Tier  int   `json:"tier"`
	Level Level `json:"level,omitempty"`
}

// Answered is one step of the path the answers took.
type Answered struct {
	Question string `json:"question"`
	Text     string `json:"text"`
	Answer   string `json:"answer"`
	Because  string `json:"because"`
}

// Warning kinds.
const (
	WarnDangerous     = "dangerous"
	WarnWrongSource   = "wrong_source"
	WarnContradiction = "contradiction"
	WarnTooHigh       = "too_high"
	WarnTooLow        = "too_low"
)

// Warning is raised where the answers, or the current build, describe something the
// ladder calls dangerous, the wrong source or a contradiction, or a system built on the
// wrong rung. Cell, when set, is the matrix cell that says so.
type Warning struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Cell    *Cell  `json:"cell,omitempty"`
}

// SymptomReading says what a ticked symptom signals, and how it sits with the placement.
type SymptomReading struct {
	Symptom
	LeadsTo   string `json:"leads_to"`
	Placement string `json:"placement"`
}

// CurrentReading judges where the stat is built today against where it belongs.
type CurrentReading struct {
	Tier  int   `json:"tier"`
	Level Level `json:"level"`
	// Cell is the matrix cell of the current pairing, when a level was given.
	Cell    *Cell  `json:"cell,omitempty"`
	Matches bool   `json:"matches"`
	Summary string `json:"summary"`
}

// Ignored is an answer to a question that did not apply: it changed nothing.
type Ignored struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	// Because names the earlier answers that made the question not apply.
	Because []string `json:"because"`
	Why     string   `json:"why"`
}

// Result is where a stat belongs on the ladder, and everything that comes with it.
type Result struct {
	// Stat is the request's stat, when it named one.
	Stat  string `json:"stat,omitempty"`
	Tier  int    `json:"tier"`
	Level Level  `json:"level"`
	// Rung names the pairing: "Tier 4 · Event log + rollups on L3 · Outbox".
	Rung    string  `json:"rung"`
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason"`
	Cell    Cell    `json:"cell"`

	// Card is the tier's card, its build steps chosen for the kind of stat: for
	// anonymous signals on the telemetry sink, steps about page views rather than
	// business events.
	Card      *Card `json:"card"`
	LevelCard *Card `json:"level_card,omitempty"`
	// Triggers are the signs to watch for: the tier's, then the level's.
	Triggers []Trigger `json:"triggers"`
	Warnings []Warning `json:"warnings"`

	Symptoms []SymptomReading `json:"symptoms,omitempty"`
	Current  *CurrentReading  `json:"current,omitempty"`

	// Path is the applicable questions in the order asked, with what each answer meant;
	// Skipped lists the questions that did not apply.
	Path    []Answered `json:"path"`
	Skipped []string   `json:"skipped"`
	// Ignored are the answers given to skipped questions, which the placement did not use.
	Ignored []Ignored `json:"ignored"`
}

// Question states in a Progress.
const (
	StateAnswered   = "answered"   // applies and has a valid answer
	StateSkipped    = "skipped"    // does not apply given the earlier answers
	StateNext       = "next"       // the first applicable question without a valid answer
	StateUnanswered = "unanswered" // applies, no valid answer, after the next one
	StatePending    = "pending"    // depends on an answer not given yet
)

// QuestionState is one question's place in a Progress.
type QuestionState struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Answer string `json:"answer,omitempty"`
}

// Progress is how far a set of answers gets through the questionnaire.
type Progress struct {
	States   []QuestionState `json:"states"`
	Next     string          `json:"next,omitempty"`
	Complete bool            `json:"complete"`

	eff known
}

// Progress walks the questionnaire with the given answers: which questions are answered,
// skipped or still to come, and which is next. Answers that are not yes or no, and ids
// that are not questions, count as not given.
func (e *Engine) Progress(answers map[string]string) Progress {
	p := Progress{eff: known{}}
	for _, q := range e.questions {
		st := QuestionState{ID: q.ID}
		switch q.applies(p.eff) {
		case tFalse:
			st.State = StateSkipped
		case tUnknown:
			st.State = StatePending
		case tTrue:
			switch v := answers[q.ID]; v {
			case Yes, No:
				st.State, st.Answer = StateAnswered, v
				p.eff[q.ID] = v == Yes
			default:
				if p.Next == "" {
					p.Next, st.State = q.ID, StateNext
				} else {
					st.State = StateUnanswered
				}
			}
		}
		p.States = append(p.States, st)
	}
	p.Complete = p.Next == ""
	return p
}

// Place answers a request: the tier, the level, the matrix verdict, the cards, the
// triggers, the warnings and the readings of symptoms and the current build. A request
// with any problem — an applicable question unanswered, an unknown question or symptom,
// an answer other than yes or no, a bad current build — returns an *AnswersError naming
// every one, and no result.
func (e *Engine) Place(req Request) (Result, error) {
	prog := e.Progress(req.Answers)
	var probs []Problem
	for _, st := range prog.States {
		if st.State != StateNext && st.State != StateUnanswered {
			continue
		}
		// An answer that is there but not yes or no is reported below, once.
		if _, given := req.Answers[st.ID]; !given {
			probs = append(probs, Problem{Question: st.ID, Problem: ProblemMissing})
		}
	}
	// Every value must be yes or no, even on a question that was skipped: a typo is a
	// typo wherever it is. Sorted so the error reads the same every time.
	ids := make([]string, 0, len(req.Answers))
	for id := range req.Answers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		ii, iok := e.qindex[ids[i]]
		jj, jok := e.qindex[ids[j]]
		if iok != jok {
			return iok
		}
		if iok {
			return ii < jj
		}
		return ids[i] < ids[j]
	})
	for _, id := range ids {
		v := req.Answers[id]
		if _, ok := e.qindex[id]; !ok {
			probs = append(probs, Problem{Question: id, Problem: ProblemUnknown})
			continue
		}
		if v != Yes && v != No {
			probs = append(probs, Problem{Question: id, Problem: ProblemNotYesNo, Value: v})
		}
	}
	for _, s := range req.Symptoms {
		if _, ok := e.symByID[s]; !ok {
			probs = append(probs, Problem{Symptom: s, Problem: ProblemUnknown})
		}
	}
	if c := req.Current; c != nil {
		if c.Tier < 1 || c.Tier > 5 {
			probs = append(probs, Problem{Field: "current.tier", Problem: ProblemInvalid, Value: fmt.Sprint(c.Tier)})
		}
		if c.Level != "" && !c.Level.Valid() {
			probs = append(probs, Problem{Field: "current.level", Problem: ProblemInvalid, Value: string(c.Level)})
		}
	}
	if len(probs) > 0 {
		return Result{}, &AnswersError{Problems: probs, Next: prog.Next}
	}
	return e.result(prog, req), nil
}

// decide is the ladder's decision on complete effective answers.
func decide(k known) (tier int, level Level, money bool) {
	switch {
	case !k[NeedsHistory] && k[HotPath]:
		return 2, LevelNone, false
	case !k[NeedsHistory]:
		return 1, LevelNone, false
	case k[FixedCadenceOK] && !k[NeedsFlow]:
		return 3, LevelNone, false
	case k[NeedsPastState]:
		if k[CrossService] {
			return 5, LevelBroker, false
		}
		return 5, LevelOutbox, false
	}
	money = k[MoneyGrade]
	switch {
	case k[CrossService]:
		return 4, LevelBroker, money
	case money:
		return 4, LevelOutbox, true
	case k[AnonymousHighVolume]:
		return 4, LevelTelemetrySink, false
	case k[LossOK]:
		return 4, LevelInProcess, false
	}
	return 4, LevelOutbox, false
}

func (e *Engine) result(prog Progress, req Request) Result {
	k := prog.eff
	tier, level, money := decide(k)
	row := RowFor(tier, money)
	cell, ok := e.matrix.Cell(row, level)
	if !ok {
		panic(fmt.Sprintf("BUG: no matrix cell for %s × %s", row, level))
	}
	r := Result{
		Stat: req.Stat, Tier: tier, Level: level,
		Verdict: cell.Verdict, Reason: cell.Reason, Cell: cell,
		Card:     e.TierCard(tier),
		Warnings: []Warning{},
		Skipped:  []string{},
		Ignored:  []Ignored{},
	}
	if level == LevelNone {
		// The matrix has no cell for a stat without events: its row says N/A to every
		// level. The placement itself is sound.
		r.Verdict = NoEvents
	}
	if level == LevelTelemetrySink && len(r.Card.BuildSignals) > 0 {
		c := *r.Card
		c.Build, c.BuildSignals = c.BuildSignals, nil
		r.Card = &c
	}
	r.Rung = r.Card.Title()
	r.Triggers = append(r.Triggers, r.Card.Triggers...)
	if level != LevelNone {
		r.LevelCard = e.byID[string(level)]
		r.Rung += " on " + r.LevelCard.Title()
		r.Triggers = append(r.Triggers, r.LevelCard.Triggers...)
	}
	for _, st := range prog.States {
		switch st.State {
		case StateAnswered:
			r.Path = append(r.Path, Answered{
				Question: st.ID, Text: e.questions[e.qindex[st.ID]].Text, Answer: st.Answer,
				Because: e.because(st.ID, st.Answer == Yes, k),
			})
		case StateSkipped:
			r.Skipped = append(r.Skipped, st.ID)
			if v, given := req.Answers[st.ID]; given {
				r.Ignored = append(r.Ignored, e.ignored(st.ID, v, prog))
			}
		}
	}
	r.Warnings = append(r.Warnings, e.answerWarnings(k, tier)...)
	if req.Current != nil {
		cur, warns := e.readCurrent(*req.Current, tier, level, money, k)
		r.Current = &cur
		r.Warnings = append(r.Warnings, warns...)
	}
	r.Symptoms = e.readSymptoms(req.Symptoms, tier, level)
	return r
}

// ignored explains why the answer to skipped question id was not used: the earlier
// answers which, given the other way, would have made it apply (or left it open).
func (e *Engine) ignored(id, answer string, prog Progress) Ignored {
	ig := Ignored{Question: id, Answer: answer, Because: []string{}}
	given := map[string]string{}
	for _, st := range prog.States {
		if st.State == StateAnswered {
			given[st.ID] = st.Answer
		}
	}
	var causes []string
	for _, st := range prog.States {
		if st.State != StateAnswered || e.qindex[st.ID] > e.qindex[id] {
			continue
		}
		flipped := maps.Clone(given)
		flipped[st.ID] = map[string]string{Yes: No, No: Yes}[st.Answer]
		for _, s := range e.Progress(flipped).States {
			if s.ID == id && s.State != StateSkipped {
				ig.Because = append(ig.Because, st.ID)
				causes = append(causes, st.ID+" = "+st.Answer)
			}
		}
	}
	ig.Why = "the question does not apply to these answers, so the answer was not used"
	if len(causes) > 0 {
		ig.Why = "not asked once " + strings.Join(causes, " and ") + ": the answer was not used"
	}
	return ig
}

// because says what an answer meant on this path. Most answers mean what the question
// says they mean; a few mean something else where a warning takes over.
func (e *Engine) because(id string, yes bool, k known) string {
	q := e.questions[e.qindex[id]]
	t5 := tier5(k) == tTrue
	money := k[MoneyGrade] && !t5
	switch id {
	case CrossService:
		if !yes && (money || t5) {
			return "Only this application reads them: the outbox is enough, no broker to run."
		}
	case AnonymousHighVolume:
		if money && yes {
			return "Web signals, but the number is money: it must be counted from business events, never from the telemetry sink (see the warnings)."
		}
		if money {
			return "Business events, not web signals: they go through your application, into the outbox."
		}
	case LossOK:
		switch {
		case yes && t5:
			return "You said a lost event is fine, but in event sourcing the events are the record (see the warnings): the outbox is the floor."
		case yes && money:
			return "You said a lost event is fine, but money-grade numbers must not undercount (see the warnings): the outbox is required."
		case !yes && t5:
			return "No event may be lost, and here the events are the record: the outbox is the floor."
		case !yes && money:
			return "No event may be lost: the outbox is required."
		}
	}
	if yes {
		return q.IfYes
	}
	return q.IfNo
}

func (e *Engine) answerWarnings(k known, tier int) []Warning {
	var ws []Warning
	cellWarn := func(kind string, r Row, l Level, msg string) {
		c, _ := e.matrix.Cell(r, l)
		if c.Footnote > 0 {
			msg += " " + e.matrix.footnotes[c.Footnote-1]
		}
		ws = append(ws, Warning{Kind: kind, Message: msg, Cell: &c})
	}
	if k[NeedsHistory] && k[FixedCadenceOK] && k[NeedsFlow] {
		ws = append(ws, Warning{Kind: WarnTooLow,
			Message: "You said a level sampled on a schedule is enough, yet the stat needs flow. A snapshot keeps the level and loses the movements — 3 created and 2 deleted show as +1 — so a rate computed from snapshots is wrong. The stat is placed on events, not snapshots.",
		})
	}
	money := tier == 4 && k[MoneyGrade]
	if money && k[AnonymousHighVolume] {
		cellWarn(WarnWrongSource, RowTier4Money, LevelTelemetrySink,
			"Money-grade numbers must never be placed on the telemetry sink, even when they start as page views: the sink is lossy by design and not a system of record. When the visitor converts, make a business event (lead_created, with their attribution copied in) and count the money from the events table.")
	}
	if money && k[LossOK] {
		cellWarn(WarnDangerous, RowTier4Money, LevelInProcess,
			"You said losing an event is fine, but the number is tied to money: collecting it in-process would be dangerous.")
	}
	if tier == 5 && k[LossOK] {
		cellWarn(WarnContradiction, RowTier5, LevelInProcess,
			"You said losing an event is fine, but the stat needs its events to be the record.")
	}
	return ws
}

// limit is the hard limit that stops tier from answering what tier to answers.
func limit(from, to int) string {
	switch {
	case to == 2:
		return "computing the value on every read is too slow where it is read"
	case from <= 2:
		return "it knows only the current rows, and every edit or delete rewrites the past"
	case from == 3:
		return "it samples levels at a fixed grain and loses the flow between samples"
	}
	return "it records what happened, not what a record looked like at an arbitrary earlier moment"
}

func levelRank(l Level) int {
	switch l {
	case LevelInProcess:
		return 1
	case LevelOutbox:
		return 2
	case LevelBroker:
		return 3
	}
	return 0
}

func (e *Engine) readCurrent(c Current, tier int, level Level, money bool, k known) (CurrentReading, []Warning) {
	cur := CurrentReading{Tier: c.Tier, Level: c.Level}
	if cur.Level == "" {
		cur.Level = LevelNone
	}
	built := e.TierCard(c.Tier)
	need := e.TierCard(tier)
	var ws []Warning
	if c.Level != "" && c.Level != LevelNone || c.Tier <= 3 {
		l := cur.Level
		cell, _ := e.matrix.Cell(RowFor(c.Tier, money), l)
		if c.Tier <= 3 {
			cell, _ = e.matrix.Cell(RowTiers1to3, LevelNone)
			cell.Level = l
		}
		cur.Cell = &cell
	}
	switch {
	case c.Tier > tier:
		var msg string
		if tier <= 2 {
			upkeep := "with nothing to maintain"
			if need.Maintenance != "none" {
				upkeep = "whose only upkeep is " + need.Maintenance
			}
			msg = fmt.Sprintf("%s for a live value: the current rows already answer it exactly, with %s, %s. %s needs %s, and its upkeep is %s. The stat uses none of it: step down, and keep %s for the stats that need it.",
				built.Name, need.Title(), upkeep, built.Label, built.Setup, built.Maintenance, built.Label)
		} else {
			msg = fmt.Sprintf("Built %s too high: %s where %s answers the stat. You pay for %s (maintenance: %s), and the stat uses none of it.",
				tiersApart(c.Tier-tier), built.Title(), need.Title(), built.Setup, built.Maintenance)
		}
		ws = append(ws, Warning{Kind: WarnTooHigh, Message: msg})
		cur.Summary = fmt.Sprintf("Too high: %s where %s is enough.", built.Title(), need.Title())
		return cur, ws
	case c.Tier < tier:
		ws = append(ws, Warning{Kind: WarnTooLow, Message: fmt.Sprintf(
			"Built too low: %s cannot answer this — %s. Climb to %s.", built.Title(), limit(c.Tier, tier), need.Title())})
		cur.Summary = fmt.Sprintf("Too low: %s where %s is needed.", built.Title(), need.Title())
		return cur, ws
	}
	// The right tier; now the level.
	if tier <= 3 || c.Level == "" || c.Level == LevelNone {
		cur.Matches = true
		cur.Summary = fmt.Sprintf("The right tier: %s.", built.Title())
		if tier >= 4 {
			cur.Summary += " Give the level too to have it judged."
		}
		return cur, ws
	}
	got := e.byID[string(c.Level)]
	want := e.byID[string(level)]
	cell := *cur.Cell
	if !cell.Verdict.OK() {
		kind := map[Verdict]string{Dangerous: WarnDangerous, WrongSource: WarnWrongSource, Contradiction: WarnContradiction}[cell.Verdict]
		if kind == "" {
			kind = WarnWrongSource // Tier 5 on the sink: the sink is no record.
		}
		msg := fmt.Sprintf("Built on %s: %s", got.Title(), cell.Reason)
		if cell.Footnote > 0 {
			msg += " " + e.matrix.footnotes[cell.Footnote-1]
		}
		ws = append(ws, Warning{Kind: kind, Message: msg, Cell: &cell})
		cur.Summary = fmt.Sprintf("The right tier on the wrong level: %s (%s); it belongs on %s.", got.Title(), cell.Mark, want.Title())
		return cur, ws
	}
	if c.Level == level {
		cur.Matches = true
		cur.Summary = fmt.Sprintf("Exactly where it belongs: %s on %s.", built.Title(), got.Title())
		return cur, ws
	}
	switch {
	case level == LevelTelemetrySink:
		ws = append(ws, Warning{Kind: WarnTooHigh, Message: fmt.Sprintf(
			"Anonymous high-volume signals carried on %s: %s Move them to the telemetry sink.", got.Title(), e.byID[string(LevelTelemetrySink)].AvoidanceResult)})
	case c.Level == LevelTelemetrySink:
		ws = append(ws, Warning{Kind: WarnWrongSource, Message: fmt.Sprintf(
			"Business events collected on the telemetry sink: it is lossy by design and never a system of record. They belong on %s.", want.Title())})
	case levelRank(c.Level) < levelRank(level):
		why := "another service must receive the events, and nothing should poll your tables for them"
		if level == LevelOutbox {
			why = "you said losing an event is not fine, and in-process collection loses them silently on a crash"
		}
		ws = append(ws, Warning{Kind: WarnTooLow, Message: fmt.Sprintf(
			"Collected on %s, one level too low: %s. Move to %s.", got.Title(), why, want.Title())})
	case c.Level == LevelBroker:
		ws = append(ws, Warning{Kind: WarnTooHigh, Message: fmt.Sprintf(
			"A broker with no other service to consume the events: its operational weight (%s) buys nothing. %s is enough.", got.Maintenance, want.Title())})
	default:
		cur.Matches = true
		cur.Summary = fmt.Sprintf("%s on %s: sturdier than the answers require (%s), and fine to keep.", built.Title(), got.Title(), cell.Mark)
		return cur, ws
	}
	cur.Summary = fmt.Sprintf("The right tier on another level: %s; it belongs on %s.", got.Title(), want.Title())
	return cur, ws
}

// climbQuestion names the answer that would have taken a stat placed on tier from up
// to tier to.
func climbQuestion(from, to int) string {
	switch {
	case to == 2:
		return HotPath
	case from <= 2:
		return NeedsHistory
	case from == 3:
		return FixedCadenceOK + " and " + NeedsFlow
	}
	return NeedsPastState
}

func (e *Engine) readSymptoms(ids []string, tier int, level Level) []SymptomReading {
	seen := map[string]bool{}
	var out []SymptomReading
	for _, s := range e.symptoms { // ladder order, whatever order they were ticked in
		if !slices.Contains(ids, s.ID) || seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		c := e.byID[s.Rung]
		rd := SymptomReading{Symptom: s, LeadsTo: c.AvoidanceResult}
		switch {
		case c.Kind == "tier" && c.Tier == tier:
			rd.Placement = fmt.Sprintf("It gives away the rung your answers chose, %s: build it properly and the workaround can go.", c.Title())
		case c.Kind == "tier" && c.Tier < tier:
			rd.Placement = fmt.Sprintf("It stands in for %s, and your answers go further, to %s: fixing this alone is not enough.", c.Title(), e.TierCard(tier).Title())
		case c.Kind == "tier":
			rd.Placement = fmt.Sprintf("It points at %s, above where your answers place the stat (%s): either it serves another stat, or an answer understated what is asked — check %s.", c.Title(), e.TierCard(tier).Title(), climbQuestion(tier, c.Tier))
		case level == Level(c.ID):
			rd.Placement = fmt.Sprintf("Your answers put the events on %s too: it removes this workaround.", c.Title())
		case level == LevelNone:
			rd.Placement = fmt.Sprintf("It is about collecting events, and your answers place the stat on %s, which collects none: it serves another stat, or this one needs events after all — check %s.", e.TierCard(tier).Title(), climbQuestion(tier, 4))
		default:
			rd.Placement = fmt.Sprintf("It points at %s; your answers put this stat's events on %s.", c.Title(), e.byID[string(level)].Title())
		}
		out = append(out, rd)
	}
	return out
}

func tiersApart(n int) string {
	switch n {
	case 1:
		return "one tier"
	case 2:
		return "two tiers"
	case 3:
		return "three tiers"
	}
	return "four tiers"
}
