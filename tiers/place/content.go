package place

import "fmt"

// Card is one rung of the ladder: a tier, or an event level. Everything on it is rung's
// own wording of the ladder's facts.
type Card struct {
	// ID is "tier1" … "tier5" for tiers and the level's name for levels; symptoms and
	// triggers point at cards by ID.
	ID    string `json:"id"`
	Kind  string `json:"kind"` // "tier" or "level"
	Tier  int    `json:"tier,omitempty"`
	Level Level  `json:"level,omitempty"`
	// Label is the short rung name: "Tier 4", "L3".
	Label   string `json:"label"`
	Name    string `json:"name"`
	Summary string `json:"summary"`

	Complexity  string `json:"complexity"`
	Setup       string `json:"setup"`
	Maintenance string `json:"maintenance"`

	Captures string   `json:"captures"`
	Why      string   `json:"why"`
	Pains    []string `json:"pains"`

	// Avoidance is what people do to stay off this rung; AvoidanceResult is where that
	// leads. Each avoidance is also a symptom a user can tick.
	Avoidance       []Symptom `json:"avoidance"`
	AvoidanceResult string    `json:"avoidance_result"`

	Triggers []Trigger `json:"triggers"`
	Build    []Step    `json:"build"`
	// BuildSignals, when set, replaces Build for a stat counted from anonymous web
	// signals on the telemetry sink (page views, not business events).
	BuildSignals []Step `json:"-"`
}

// Title is the label and the name together: "Tier 4 · Event log + rollups".
func (c *Card) Title() string { return c.Label + " · " + c.Name }

// Trigger is a sign to watch for on a rung. Climb names the card it sends you to; when
// empty, the fix stays on this rung.
type Trigger struct {
	When  string `json:"when"`
	Then  string `json:"then"`
	Climb string `json:"climb,omitempty"`
}

// Step is one step of "how to build it". Code is Go using rung's packages; it is read
// from the snippets directory, and a test checks every package-qualified name in it
// against the repository's source.
type Step struct {
	Title   string `json:"title"`
	Note    string `json:"note,omitempty"`
	Snippet string `json:"snippet"`
	Code    string `json:"code"`
}

// Symptom is one thing people do to avoid a rung. Rung is the card it gives away;
// Signals says what seeing it in your system means.
type Symptom struct {
	ID      string `json:"id"`
	Text    string `json:"text"`
	Rung    string `json:"rung"`
	Signals string `json:"signals"`
}

// TierID is the card id of tier n.
func TierID(n int) string { return fmt.Sprintf("tier%d", n) }

func cards() []*Card {
	return []*Card{
		{
			ID: TierID(1), Kind: "tier", Tier: 1, Label: "Tier 1",
			Name:        "Live query",
			Summary:     "Ask the current rows, every time.",
			Complexity:  "trivial",
			Setup:       "the database and an index on what you filter by",
			Maintenance: "none",
			Captures:    "The value right now, accurate to this instant: the number of contacts, of open jobs, today's pipeline.",
			Why:         "Nothing to keep in sync and nothing that can go stale — the rows are the answer. No job, no extra table, no cache to invalidate. Far more stats belong here than teams expect.",
			Pains: []string{
				"It knows only now: the table holds today's rows, not their past.",
				"Every edit and delete rewrites the answer for all earlier dates, so “how many last March” has no answer.",
				"Its cost grows with the rows it scans; on a hot path the count can become the slowest thing the app does.",
			},
			Avoidance: []Symptom{
				{ID: "bigger_database", Text: "Raising timeouts and buying a bigger database so a count keeps up",
					Signals: "The live query is too slow where it is read — Tier 1's own trigger. Keep the value ready (Tier 2) with one place that updates it, instead of scaling the database for one number."},
				{ID: "adhoc_view_caches", Text: "Sprinkling ad-hoc caches over the views that show the number",
					Signals: "Caches are appearing without an owner: the stat wants Tier 2, built once, with a single invalidation path."},
			},
			AvoidanceResult: "Slow pages nobody can explain, and one count that grows into the slowest query in the app.",
			Triggers: []Trigger{
				{When: "Someone asks what the number was last month, or how it trended.", Then: "The rows can't tell you: start sampling it.", Climb: TierID(3)},
				{When: "The count sits on a hot path, or the indexed query is too slow at your scale.", Then: "Keep the value ready instead of computing it per read.", Climb: TierID(2)},
				{When: "The query plan scans the table.", Then: "Add the index the filter needs; that is still Tier 1."},
			},
			Build: []Step{
				{Title: "Index what you filter on", Snippet: "tier1_index.go.txt"},
				{Title: "Ask the database", Snippet: "tier1_query.go.txt"},
				{Title: "And that is all", Note: "Nothing to schedule, store or invalidate. Move up only when one of the signs below shows up."},
			},
		},
		{
			ID: TierID(2), Kind: "tier", Tier: 2, Label: "Tier 2",
			Name:        "Cached current state",
			Summary:     "The same current value, kept ready so reading it costs nothing.",
			Complexity:  "low",
			Setup:       "a counter kept beside the rows, a Redis key, or a materialized view",
			Maintenance: "invalidation: keeping the cached value equal to what a live query would say",
			Captures:    "The questions Tier 1 answers, when they are read on a hot path or at a scale where the live query is too slow.",
			Why:         "Reads are free. The clean form is a counter changed in the same transaction that adds or removes the row, so there is exactly one place the number moves.",
			Pains: []string{
				"Still no history: it caches now, not the past.",
				"A new risk: the cache drifts whenever a write path forgets to update it.",
				"Freshness becomes a setting you choose, not a guarantee.",
			},
			Avoidance: []Symptom{
				{ID: "scattered_caches", Text: "Caching the number by hand in many places, each with its own invalidation",
					Signals: "You are on Tier 2 without its clean form: one counter, updated where the rows change, checked against a live count."},
			},
			AvoidanceResult: "Numbers nobody trusts and bugs nobody can reproduce.",
			Triggers: []Trigger{
				{When: "Someone asks about the past or a trend.", Then: "A cache only knows now: sample the value on a schedule.", Climb: TierID(3)},
				{When: "The cached value and a live count disagree.", Then: "Route every write through the one counter and reconcile it against Tier 1; do not add another cache."},
			},
			Build: []Step{
				{Title: "A counter kept in the writing transaction", Snippet: "tier2_counter.go.txt"},
				{Title: "Read it for free, check it against the rows", Snippet: "tier2_read.go.txt"},
			},
		},
		{
			ID: TierID(3), Kind: "tier", Tier: 3, Label: "Tier 3",
			Name:        "Periodic snapshot",
			Summary:     "On a schedule, the value as it stands is copied into a table of history.",
			Complexity:  "low to medium",
			Setup:       "a job on a schedule, and a table of values by date",
			Maintenance: "the job itself, and filling the gaps when a run fails",
			Captures:    "A level's path through time: the contact count at every month-end, the pipeline month by month.",
			Why:         "It is the first tier that keeps history the current rows cannot rebuild. Deleting a contact today leaves yesterday's row alone.",
			Pains: []string{
				"The cadence fixes the grain for good: sample daily and hourly questions never have an answer.",
				"It keeps levels and loses flow: three contacts added and two removed in one day look like one added, and the five movements are lost.",
				"A failed run leaves a hole that the current rows can no longer fill.",
			},
			Avoidance: []Symptom{
				{ID: "soft_deletes_forever", Text: "Keeping soft-deleted rows forever to rebuild the past",
					Signals: "Someone needs history and is keeping it inside current-state tables: that is a snapshot's job (Tier 3), which leaves yesterday alone when a row is deleted."},
				{ID: "spreadsheet_tracking", Text: "Tracking the number by hand in a spreadsheet",
					Signals: "The history lives outside the system: a scheduled snapshot (Tier 3) makes it real, complete and current."},
			},
			AvoidanceResult: "Tables that only grow, deleted rows turning up in live counts, and a spreadsheet that ends up as the number everyone quotes — always a little behind.",
			Triggers: []Trigger{
				{When: "Someone asks for a rate, a conversion, time between states, or what caused a change.", Then: "Snapshots only hold levels: record each change as an event.", Climb: TierID(4)},
				{When: "Someone needs a finer grain than the cadence, or a moment between two samples.", Then: "No schedule can give that back: record the changes themselves.", Climb: TierID(4)},
				{When: "Attribution must survive later edits (the lead's source at the time of the sale).", Then: "Copy the value into an event when it happens.", Climb: TierID(4)},
				{When: "A run failed and left a gap.", Then: "Rerun it for that date as soon as you can; the upsert keyed by date makes reruns safe."},
			},
			Build: []Step{
				{Title: "A history table, one row per date and metric", Snippet: "tier3_table.go.txt"},
				{Title: "A job that samples the current state", Snippet: "tier3_job.go.txt"},
				{Title: "Run it on a schedule", Snippet: "tier3_schedule.go.txt"},
			},
		},
		{
			ID: TierID(4), Kind: "tier", Tier: 4, Label: "Tier 4",
			Name:        "Event log + rollups",
			Summary:     "Write down each thing that happens, never change it, and count from that record.",
			Complexity:  "high — the biggest jump on the ladder",
			Setup:       "event definitions, emission at every change, a permanent events table, rollups, a registry of definitions",
			Maintenance: "rollup correctness and reconciliation; versioning events",
			Captures:    "What moved and why, precisely: each occurrence in sequence, carrying the values it had when it happened. Rates, conversion, durations between states, attribution that stays put.",
			Why:         "Churn shows: the three additions and the two removals are each in the log. Editing a lead later cannot move last quarter's revenue, because the event holds its own copy of the source rather than a reference to the lead. A breakdown nobody planned for is one more aggregation over the same events.",
			Pains: []string{
				"Only what was copied into the payload can be sliced by; a dimension added later counts from that day on.",
				"It answers what happened, not what a given record looked like at some earlier moment.",
				"More machinery than any tier below: definitions, emission, rollups and their reconciliation.",
			},
			Avoidance: []Symptom{
				{ID: "rates_from_snapshots", Text: "Taking a rate from two snapshots of the same period (deals won this month ÷ leads this month)",
					Signals: "A rate needs flow. Dividing one period's outcomes by the same period's inputs mixes different cohorts and inverts under volume: count the events (Tier 4)."},
				{ID: "stored_ratios", Text: "Saving each day's ratio and throwing away the two counts behind it",
					Signals: "A stored ratio cannot be re-aggregated — a week of daily rates averaged is an average of averages. Record the events and keep both counts (Tier 4)."},
				{ID: "diffed_state_events", Text: "Deriving “events” by diffing state at the end of each day",
					Signals: "Diffing invents events and timestamps and misses everything that cancelled out within the day: emit the event at the change (Tier 4)."},
			},
			AvoidanceResult: "Rates that flip when volume changes, averages taken of averages, and a log of events with made-up times: numbers that look off because they are.",
			Triggers: []Trigger{
				{When: "You must rebuild what an entity looked like at an arbitrary past moment, or replay everything for an audit or a regulator.", Then: "Make the events the record.", Climb: TierID(5)},
				{When: "The number becomes tied to money, or must never undercount.", Then: "Commit each event with its change through an outbox.", Climb: string(LevelOutbox)},
				{When: "Another service needs the events.", Then: "Relay the outbox to a broker.", Climb: string(LevelBroker)},
				{When: "Reconciliation finds a group where the rollup and the recomputation disagree.", Then: "That is a caught bug: fix the incremental path and recompute from the events."},
				{When: "A new breakdown needs a dimension the payload lacks.", Then: "Add it to the definition as a new version; it counts from now on."},
			},
			Build: []Step{
				{Title: "Define the event, schema first", Snippet: "tier4_define.go.txt"},
				{Title: "Emit it inside the change, copying the values in", Snippet: "tier4_emit.go.txt"},
				{Title: "Roll up by recomputation, idempotently", Snippet: "tier4_rollup.go.txt"},
				{Title: "Reconcile: the recomputation is the auditor", Snippet: "tier4_reconcile.go.txt"},
			},
			BuildSignals: []Step{
				{Title: "The page view is the event, and its schema ships with rung", Snippet: "tier4_signal_define.go.txt"},
				{Title: "Rolled up as the sink is written: read the rollup", Snippet: "tier4_signal_read.go.txt", Note: "Sessions, conversions and CVR per landing page, pre-aggregated on ingest."},
			},
		},
		{
			ID: TierID(5), Kind: "tier", Tier: 5, Label: "Tier 5",
			Name:        "Event sourcing",
			Summary:     "Events are the system of record; today's state is derived by replaying them.",
			Complexity:  "high — the model inverts",
			Setup:       "an event store, replay, snapshots for replay speed",
			Maintenance: "versioning and upcasting old events forever; replay performance",
			Captures:    "All of Tier 4, and also what any record looked like at any instant, and a complete replay for auditors — including questions no one thought to ask.",
			Why:         "There is one record, and everything else derives from it. Any instant can be rebuilt; a wrong projection is corrected and recomputed from the same events; no audit position is stronger.",
			Pains: []string{
				"The hardest tier to build and to think about, and far more than most data needs.",
				"Replay time and the shapes of old events stay your problem for as long as the system lives.",
				"Don't reach for it without a real need to rebuild past state or replay history for a regulator.",
			},
			Avoidance: []Symptom{
				{ID: "audit_log_bolted_on", Text: "Bolting on an audit_log table",
					Signals: "Someone needs to know how records got to where they are. If arbitrary past state or replay is truly required, that is Tier 5; if not, Tier 4's events cover it."},
				{ID: "adhoc_history_columns", Text: "Adding history columns (previous_status, changed_at) one by one",
					Signals: "Each column answers one anticipated question about the past; the unanticipated ones need either events (Tier 4) or, for reconstruction, event sourcing (Tier 5)."},
				{ID: "changes_table", Text: "Keeping a changes table beside the real tables",
					Signals: "A second, partial record of what happened now competes with the tables: decide which is the truth — events as the record is Tier 5."},
			},
			AvoidanceResult: "History that only covers what someone thought of in advance, holes in the audit precisely where nothing was written down, and two records of the truth that contradict each other.",
			Triggers: []Trigger{
				{When: "Replaying an entity gets slow.", Then: "Snapshot the fold every N events and replay from the latest snapshot."},
				{When: "An old event's shape no longer fits the code.", Then: "Upcast it on read; never rewrite the stored event."},
				{When: "The stat turns out to be a live count, a trend or a rate.", Then: "Event sourcing is one tier (or more) too high for it: build the lower tier and keep Tier 5 for what must be replayed."},
			},
			Build: []Step{
				{Title: "Events are the only writes", Snippet: "tier5_append.go.txt"},
				{Title: "Derive state by folding the stream", Snippet: "tier5_fold.go.txt"},
				{Title: "Query as of any moment; upcast old events as they are read", Snippet: "tier5_asof.go.txt"},
			},
		},
		{
			ID: string(LevelInProcess), Kind: "level", Level: LevelInProcess, Label: "L1–2",
			Name:        "In-process",
			Summary:     "Handle the event in code: in the request, or in a background job.",
			Complexity:  "trivial",
			Setup:       "a function call, or a job on a queue",
			Maintenance: "low",
			Captures:    "Events handled inside your own application, synchronously in the request (L1) or asynchronously in a job (L2).",
			Why:         "Nothing cheaper handles an event. It fits when a lost event truly doesn't matter: numbers read for their direction, not for accounting.",
			Pains: []string{
				"An event is lost silently when the process crashes or the job fails.",
				"No dedup and no dead-letter.",
				"Nothing ties the event to the business write: either one can happen without the other.",
			},
			Avoidance: []Symptom{
				{ID: "naive_retries", Text: "Retrying failed handlers with no idempotency",
					Signals: "Events are being lost or counted twice. Give each one an event_id and write it through an outbox in the business transaction."},
			},
			AvoidanceResult: "Events counted twice or not at all, and no way to know which ones were missed.",
			Triggers: []Trigger{
				{When: "The number becomes money-grade or must never undercount.", Then: "Commit the event with the change.", Climb: string(LevelOutbox)},
				{When: "You discover lost or doubled events.", Then: "Give events ids and make them durable.", Climb: string(LevelOutbox)},
				{When: "Another service needs the events.", Then: "Durable delivery across services.", Climb: string(LevelBroker)},
			},
			Build: []Step{
				{Title: "Synchronous, in the request (L1)", Snippet: "inprocess_sync.go.txt"},
				{Title: "Asynchronous, in a job (L2)", Snippet: "inprocess_async.go.txt", Note: "Outlives the request; dies with the process."},
			},
		},
		{
			ID: string(LevelOutbox), Kind: "level", Level: LevelOutbox, Label: "L3",
			Name:        "Outbox",
			Summary:     "The event is committed with the change it describes; a relay delivers it afterwards.",
			Complexity:  "medium",
			Setup:       "an outbox table, a relay, idempotency keys (the event_id)",
			Maintenance: "watching the outbox, a dead-letter path, pruning what was relayed",
			Captures:    "Events that may never go missing and that must stand or fall with the business write.",
			Why:         "It removes the dual-write problem: one commit holds both the change and its event, so neither exists without the other. Nothing less will do for money-grade numbers or for event sourcing.",
			Pains: []string{
				"Real machinery to run and to watch.",
				"It is a queue — rows get updated and deleted — so keep the permanent history in the events table the relay projects into.",
			},
			Avoidance: []Symptom{
				{ID: "dual_writes", Text: "Dual writes: write the database, then publish the event separately",
					Signals: "State and events can drift apart whenever one write fails. Write the event into the outbox inside the business transaction."},
			},
			AvoidanceResult: "The classic failure: the database commits and the publish fails (or the other way round), and state and events diverge without a sound.",
			Triggers: []Trigger{
				{When: "Another service must consume the events.", Then: "Relay the outbox to a broker instead of calling that service.", Climb: string(LevelBroker)},
				{When: "Unrelayed rows pile up, or rows land in the dead-letter state.", Then: "The relay is stuck or an event is poison: alert on the oldest unrelayed row and inspect it."},
				{When: "Page views or clicks start flowing into the outbox.", Then: "Anonymous signals at volume belong in the telemetry sink.", Climb: string(LevelTelemetrySink)},
			},
			Build: []Step{
				{Title: "Write the event in the transaction that makes the change", Snippet: "outbox_write.go.txt"},
				{Title: "A relay delivers committed rows and marks them sent", Snippet: "outbox_relay.go.txt"},
			},
		},
		{
			ID: string(LevelBroker), Kind: "level", Level: LevelBroker, Label: "L4",
			Name:        "Broker",
			Summary:     "Relay the outbox to a broker so other services consume the events.",
			Complexity:  "high (operations)",
			Setup:       "a broker (NATS JetStream in rung), consumers, schemas shared across teams, partitioning",
			Maintenance: "running the broker, consumer lag, ordering, replay",
			Captures:    "Events delivered reliably to consumers that run outside your application.",
			Why:         "Services share a stream instead of each other's tables: consumers come and go independently, and each can replay from where it needs.",
			Pains: []string{
				"One more system to operate: the broker itself.",
				"Ordering guarantees and consumer lag to think through.",
				"Event schemas that several teams must evolve together.",
			},
			Avoidance: []Symptom{
				{ID: "shared_database", Text: "Services polling each other's databases, or sharing one database",
					Signals: "Another service needs your events and is reaching into your tables for them. Relay the outbox to a broker and let it consume."},
			},
			AvoidanceResult: "Tight coupling, brittle integrations and no replay: a distributed monolith.",
			Triggers: []Trigger{
				{When: "Consumer lag keeps growing.", Then: "Add consumers per partition, or find the slow handler; never drop the ordering key to go faster."},
				{When: "A consumer needs history from before it existed.", Then: "Replay from the stream's retention, or from the permanent events table."},
			},
			Build: []Step{
				{Title: "The outbox relays to the broker", Snippet: "broker_relay.go.txt", Note: "The event_id becomes the message id, so a redelivery is deduplicated."},
				{Title: "Consumers project into their own tables", Snippet: "broker_project.go.txt"},
			},
		},
		{
			ID: string(LevelTelemetrySink), Kind: "level", Level: LevelTelemetrySink, Label: "L0",
			Name:        "Telemetry sink",
			Summary:     "Fire-and-forget collection of high-volume anonymous signals.",
			Complexity:  "medium",
			Setup:       "a collector endpoint, batching, a columnar store, pre-aggregation",
			Maintenance: "the ingest pipeline and the columnar store",
			Captures:    "Anonymous browser signals at high rates — page views, clicks — from before anyone has identified themselves; they feed the top of the marketing funnel.",
			Why:         "Made for volumes an outbox would choke on. Losing some is accepted up front: a single page view means nothing, the totals mean everything. When a visitor becomes a lead, it hands over to a business event.",
			Pains: []string{
				"A second store to run beside your database.",
				"It is never the record of anything.",
				"Its signals must stay out of the business events table.",
			},
			Avoidance: []Symptom{
				{ID: "pageviews_in_outbox", Text: "Putting page views into the same events or outbox table as business events",
					Signals: "Anonymous, high-volume signals are drowning the business events. Collect them into a telemetry sink, pre-aggregate them, and hand a visitor over to a business event only when they convert."},
			},
			AvoidanceResult: "The outbox and the database drown in billions of near-worthless rows, business events get lost among them, and retention becomes a nightmare.",
			Triggers: []Trigger{
				{When: "A signal turns into money — a lead, a sale.", Then: "When the visitor converts, make a business event that carries a copy of their attribution, and count money from the events table.", Climb: string(LevelOutbox)},
				{When: "Someone wants a money-grade number straight from page views.", Then: "Never from the sink: the sink is lossy and not a record. Count the stitched business events.", Climb: string(LevelOutbox)},
				{When: "The collector starts dropping signals under load.", Then: "Watch the drop counters per reason; grow the buffer or the flush rate, not the guarantees."},
			},
			Build: []Step{
				{Title: "A thin collector: accept, validate, buffer, 202", Snippet: "sink_collect.go.txt"},
				{Title: "Batch-flush into the columnar store, pre-aggregating", Snippet: "sink_flush.go.txt"},
				{Title: "When a visitor converts, hand over to a business event", Snippet: "sink_stitch.go.txt"},
			},
		},
	}
}
