package place

// The questionnaire, in the order asked; a question is skipped once earlier answers
// make it irrelevant:
//
//	needs_history          no  → hot_path: no → Tier 1, yes → Tier 2
//	fixed_cadence_ok       yes → needs_flow: no → Tier 3 (yes: flow, so events)
//	needs_past_state       yes → Tier 5, no → Tier 4
//	money_grade            Tier 4 only: picks the matrix row (insight or money)
//	cross_service          yes → broker (Tier 4 insight stops here)
//	anonymous_high_volume  Tier 4; for insight, yes → telemetry sink; for money, a warning
//	loss_ok                insight: yes → in-process, no → outbox; money or Tier 5: the
//	                       outbox (or broker) stays, and yes earns a warning
//
// The question ids are a public contract: saved answers files, scripts and the API's
// callers name them. Add questions if the ladder needs them; never rename one.
const (
	NeedsHistory        = "needs_history"
	HotPath             = "hot_path"
	FixedCadenceOK      = "fixed_cadence_ok"
	NeedsFlow           = "needs_flow"
	NeedsPastState      = "needs_past_state"
	MoneyGrade          = "money_grade"
	CrossService        = "cross_service"
	AnonymousHighVolume = "anonymous_high_volume"
	LossOK              = "loss_ok"
)

// The two answers every question takes, spelled exactly so.
const (
	Yes = "yes"
	No  = "no"
)

// Question is one yes/no question of the questionnaire.
type Question struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	// Help says what the question is really asking, with examples.
	Help string `json:"help"`
	// IfYes and IfNo say what each answer means for the placement; the result repeats
	// the one given as the reason for that step.
	IfYes string `json:"if_yes"`
	IfNo  string `json:"if_no"`

	// applies says whether the question matters given the effective answers to the
	// questions before it. It may only look at earlier questions.
	applies func(k known) tri
}

// tri is Kleene's three-valued logic: a question's applicability is unknown while an
// answer it depends on is missing, and only certainly-applicable questions are reported
// as missing.
type tri int8

const (
	tUnknown tri = iota
	tTrue
	tFalse
)

func triOf(b bool) tri {
	if b {
		return tTrue
	}
	return tFalse
}

func and(ts ...tri) tri {
	out := tTrue
	for _, t := range ts {
		switch t {
		case tFalse:
			return tFalse
		case tUnknown:
			out = tUnknown
		}
	}
	return out
}

func or(ts ...tri) tri {
	out := tFalse
	for _, t := range ts {
		switch t {
		case tTrue:
			return tTrue
		case tUnknown:
			out = tUnknown
		}
	}
	return out
}

func not(t tri) tri {
	switch t {
	case tTrue:
		return tFalse
	case tFalse:
		return tTrue
	}
	return tUnknown
}

// known holds the effective answers: those given, valid and to questions that apply.
type known map[string]bool

func (k known) is(id string) tri {
	v, ok := k[id]
	if !ok {
		return tUnknown
	}
	return triOf(v)
}

// The shape of the decision, in the terms the predicates below share.

// eventTier: history is needed and a sampled level is not enough (no fixed cadence is,
// or the stat needs flow): Tier 4 or 5, where event levels begin.
func eventTier(k known) tri {
	return and(k.is(NeedsHistory), or(not(k.is(FixedCadenceOK)), k.is(NeedsFlow)))
}

func tier4(k known) tri { return and(eventTier(k), not(k.is(NeedsPastState))) }
func tier5(k known) tri { return and(eventTier(k), k.is(NeedsPastState)) }

func questions() []Question {
	return []Question{
		{
			ID:    NeedsHistory,
			Text:  "Must the stat answer about the past — “how many last March”, a trend over the year?",
			Help:  "Yes if anyone will ask what the number was at some earlier time, or how it moved. No if only the value right now matters: how many contacts, open jobs, the pipeline today.",
			IfYes: "It asks about the past, and the current rows only know now: at least Tier 3.",
			IfNo:  "It asks only about now, so the current rows can answer it: Tier 1 or 2.",
			applies: func(known) tri {
				return tTrue
			},
		},
		{
			ID:    HotPath,
			Text:  "Is the current value read on a hot path, or at a scale where the live query is too slow?",
			Help:  "Yes if it is shown on every page view, polled by many clients, or the indexed query already takes too long. No if a query on demand is fast enough — it usually is.",
			IfYes: "The live query is too slow where it is read: keep the value ready (Tier 2).",
			IfNo:  "An indexed query on demand is fast enough: ask the database (Tier 1).",
			applies: func(k known) tri {
				return not(k.is(NeedsHistory))
			},
		},
		{
			ID:    FixedCadenceOK,
			Text:  "Is a level sampled at a fixed cadence (say, daily) enough?",
			Help:  "Yes if the question is “what was the level at each month-end (or each day)” and nobody will ever need a finer grain. No if you need any moment, a finer grain later, or the stat is not a level at all (a rate, a conversion, a sum of things that happened).",
			IfYes: "A scheduled sample of the level answers it: a periodic snapshot (Tier 3) unless it needs flow.",
			IfNo:  "No fixed sample is enough: record each change as it happens (Tier 4 at least).",
			applies: func(k known) tri {
				return k.is(NeedsHistory)
			},
		},
		{
			ID:    NeedsFlow,
			Text:  "Does it need flows: rates, conversion, time between states, or attribution that survives later edits?",
			Help:  "Yes for anything counted between two moments — leads that converted, deals closed by their original source, time from signup to first order. A snapshot keeps the level and loses the movements: 3 created and 2 deleted show as +1.",
			IfYes: "A snapshot records levels and loses flow: the stat needs events (Tier 4 at least).",
			IfNo:  "Levels sampled on a schedule are all it needs: a periodic snapshot (Tier 3).",
			applies: func(k known) tri {
				return and(k.is(NeedsHistory), k.is(FixedCadenceOK))
			},
		},
		{
			ID:    NeedsPastState,
			Text:  "Must it rebuild any entity's arbitrary past state, or replay history for an audit or a regulator?",
			Help:  "Yes only if you must reconstruct what any record looked like at any past moment — including questions nobody anticipated — or replay everything for an auditor. Most stats do not: resist this unless it is truly required.",
			IfYes: "Past state must be rebuilt at will: the events must be the record (Tier 5).",
			IfNo:  "Recording what happened is enough; nobody must replay an entity's past state: Tier 4.",
			applies: func(k known) tri {
				return eventTier(k)
			},
		},
		{
			ID:    MoneyGrade,
			Text:  "Is it tied to money — billing, commission, revenue — or must it never undercount?",
			Help:  "Yes if someone is paid, billed or judged by this number, or an undercount would be a real error. No if it is a directional, insight-grade number where a missing event barely moves it.",
			IfYes: "It is money-grade: events must not be lost, so the outbox is required.",
			IfNo:  "It is insight-grade: directional, so a cheaper level can be valid.",
			applies: func(k known) tri {
				return tier4(k)
			},
		},
		{
			ID:    CrossService,
			Text:  "Must the events reach another service?",
			Help:  "Yes if a different service (or team) consumes these events — billing, a warehouse loader, a notifier. No if only this application reads them.",
			IfYes: "Another service consumes them: relay the outbox to a broker.",
			IfNo:  "Only this application reads them: no broker to run.",
			applies: func(k known) tri {
				return eventTier(k)
			},
		},
		{
			ID:    AnonymousHighVolume,
			Text:  "Are these high-volume, anonymous, pre-identity web signals — page views, clicks?",
			Help:  "Yes if the events come from browsers before anyone has identified themselves, in numbers where one event is worthless and only the aggregate matters. No for business events: a lead created, a deal closed, an invoice paid.",
			IfYes: "Anonymous signals at volume: a telemetry sink, never the outbox.",
			IfNo:  "Business events, not web signals: they go through your application.",
			applies: func(k known) tri {
				return and(tier4(k), or(k.is(MoneyGrade), not(k.is(CrossService))))
			},
		},
		{
			ID:    LossOK,
			Text:  "Is losing an occasional event genuinely fine?",
			Help:  "Yes only if a lost event (a crash mid-request, a failed job) changes nothing anyone acts on. No if every event must be counted.",
			IfYes: "Losing one now and then is fine: handle events in-process.",
			IfNo:  "No event may be lost: commit it with the change through an outbox.",
			applies: func(k known) tri {
				return or(tier5(k), and(tier4(k), or(k.is(MoneyGrade),
					and(not(k.is(CrossService)), not(k.is(AnonymousHighVolume))))))
			},
		},
	}
}
