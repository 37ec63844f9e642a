package place

// Level is how durably a stat's events are collected. Below Tier 4 there are no events;
// tiers 1–3 read state and collect no events, so their level is LevelNone.
type Level string

// The event levels, spelled as the API spells them.
const (
	LevelNone          Level = "none"
	LevelInProcess     Level = "in_process"
	LevelOutbox        Level = "outbox"
	LevelBroker        Level = "broker"
	LevelTelemetrySink Level = "telemetry_sink"
)

// Levels lists the event levels in the matrix's column order: the lossy sink, then
// in-process, outbox and broker, from least to most durable plumbing.
func Levels() []Level {
	return []Level{LevelTelemetrySink, LevelInProcess, LevelOutbox, LevelBroker}
}

// Valid reports whether l is one of the levels (LevelNone included).
func (l Level) Valid() bool {
	switch l {
	case LevelNone, LevelInProcess, LevelOutbox, LevelBroker, LevelTelemetrySink:
		return true
	}
	return false
}

// Verdict is what the matrix says of a tier × level pairing.
type Verdict string

// The matrix's verdicts.
const (
	Valid         Verdict = "valid"
	Ideal         Verdict = "ideal"
	Required      Verdict = "required"
	Dangerous     Verdict = "dangerous"
	WrongSource   Verdict = "wrong_source"
	Contradiction Verdict = "contradiction"
	NotApplicable Verdict = "not_applicable"
	// NoEvents is a result's verdict, never a cell's: tiers 1–3 read state, collect no
	// events, and so need no event level at all.
	NoEvents Verdict = "no_events_needed"
)

// OK reports whether a stat may be built on a pairing with this verdict.
func (v Verdict) OK() bool {
	return v == Valid || v == Ideal || v == Required || v == NoEvents
}

// Row is a row of the matrix. Tier 4 has two: the same tier is judged differently when
// its numbers are insight-grade and when they are tied to money.
type Row string

// The matrix's rows, top to bottom.
const (
	RowTiers1to3    Row = "tiers_1_3"
	RowTier4Insight Row = "tier_4_insight"
	RowTier4Money   Row = "tier_4_money"
	RowTier5        Row = "tier_5"
)

// Rows lists the matrix's rows in order.
func Rows() []Row {
	return []Row{RowTiers1to3, RowTier4Insight, RowTier4Money, RowTier5}
}

// RowFor says which row judges a tier; money only matters on Tier 4.
func RowFor(tier int, money bool) Row {
	switch {
	case tier <= 3:
		return RowTiers1to3
	case tier == 4 && money:
		return RowTier4Money
	case tier == 4:
		return RowTier4Insight
	}
	return RowTier5
}

// Cell is one pairing's verdict. Mark is the matrix's short label ("ideal", "floor",
// "wrong src", ...); Footnote is 1 or 2 when one of the matrix's footnotes explains the
// cell, else 0.
type Cell struct {
	Row      Row     `json:"row"`
	Level    Level   `json:"level"`
	Verdict  Verdict `json:"verdict"`
	Mark     string  `json:"mark"`
	Reason   string  `json:"reason"`
	Footnote int     `json:"footnote,omitempty"`
}

// Matrix is the tier × level matrix: which pairings are real.
type Matrix struct {
	cells     map[Row]map[Level]Cell
	footnotes []string
}

// RowLabel is how the matrix names a row.
func RowLabel(r Row) string {
	switch r {
	case RowTiers1to3:
		return "Tier 1–3"
	case RowTier4Insight:
		return "Tier 4 · insight"
	case RowTier4Money:
		return "Tier 4 · money"
	case RowTier5:
		return "Tier 5 · sourcing"
	}
	return string(r)
}

// LevelLabel is how the matrix names a column.
func LevelLabel(l Level) string {
	switch l {
	case LevelTelemetrySink:
		return "L0 · lossy sink"
	case LevelInProcess:
		return "L1–2 · in-process"
	case LevelOutbox:
		return "L3 · outbox"
	case LevelBroker:
		return "L4 · broker"
	}
	return "no event level"
}

// Cell returns the verdict for a pairing. LevelNone (tiers 1–3) and any level on the
// Tier 1–3 row are not applicable.
func (m *Matrix) Cell(r Row, l Level) (Cell, bool) {
	if l == LevelNone {
		if r != RowTiers1to3 {
			return Cell{}, false
		}
		c := m.cells[RowTiers1to3][LevelOutbox]
		c.Level = LevelNone
		return c, true
	}
	c, ok := m.cells[r][l]
	return c, ok
}

// Footnotes are the matrix's two footnotes, 1 and 2 in order.
func (m *Matrix) Footnotes() []string { return append([]string(nil), m.footnotes...) }

func newMatrix() *Matrix {
	const na13 = "Tiers 1–3 read the state that is already in your tables; they collect no events, so there is no event level to choose."
	m := &Matrix{
		cells: map[Row]map[Level]Cell{},
		footnotes: []string{
			"Tier 4 over lossy collection undercounts its rollups without a trace: nothing records what went missing, so nothing can notice it or recompute it. Good enough for a rough look; not acceptable for any number that involves money.",
			"Tier 5 on lossy collection contradicts itself: events cannot be the source of truth when the pipe that carries them drops some.",
		},
	}
	add := func(r Row, l Level, v Verdict, mark string, foot int, reason string) {
		if m.cells[r] == nil {
			m.cells[r] = map[Level]Cell{}
		}
		m.cells[r][l] = Cell{Row: r, Level: l, Verdict: v, Mark: mark, Reason: reason, Footnote: foot}
	}
	for _, l := range Levels() {
		add(RowTiers1to3, l, NotApplicable, "N/A", 0, na13)
	}

	add(RowTier4Insight, LevelTelemetrySink, Valid, "telemetry", 0,
		"Anonymous, high-volume web signals belong in the telemetry sink: built for the volume, lossy by design, and an insight-grade aggregate shrugs off a lost page view.")
	add(RowTier4Insight, LevelInProcess, Valid, "ok", 0,
		"Handling insight-grade events in-process is fine when losing one now and then changes nothing anyone acts on. It is the cheapest level there is.")
	add(RowTier4Insight, LevelOutbox, Ideal, "ideal", 0,
		"The outbox commits each event with the change it records, so the rollups are complete and can be reconciled — the best home for business events even when no money rides on them.")
	add(RowTier4Insight, LevelBroker, Valid, "multi-svc", 0,
		"When other services consume the events, relay the outbox to a broker: durable delivery, many consumers, replay.")

	add(RowTier4Money, LevelTelemetrySink, WrongSource, "wrong src", 0,
		"Money-grade numbers never come from the telemetry sink: it is lossy by design and not a system of record. Turn the converting visitor into a business event and count money from the events table.")
	add(RowTier4Money, LevelInProcess, Dangerous, "dangerous", 1,
		"In-process collection drops events on a crash or a failed job without a word, and nothing ties the event to the business write: a money-grade rollup would come up short and nobody could tell.")
	add(RowTier4Money, LevelOutbox, Required, "required", 0,
		"Money-grade events must commit with the change that caused them and land in the events table exactly once (unique event_id): the outbox is required.")
	add(RowTier4Money, LevelBroker, Valid, "✓", 0,
		"Money-grade events can reach other services through a broker, provided they enter it through the outbox.")

	add(RowTier5, LevelTelemetrySink, NotApplicable, "N/A", 0,
		"Event sourcing makes events the record of your own entities; anonymous telemetry is neither the record nor durable, so the pairing does not arise.")
	add(RowTier5, LevelInProcess, Contradiction, "contradiction", 2,
		"When events are the record, a lost event is lost state: in-process collection drops events on a crash, so it cannot carry an event-sourced system.")
	add(RowTier5, LevelOutbox, Required, "floor", 0,
		"The outbox is the floor for event sourcing: each event is committed durably and exactly once, or the change did not happen.")
	add(RowTier5, LevelBroker, Valid, "✓", 0,
		"An event-sourced system can publish its events to other services through a broker, fed by the outbox.")
	return m
}
