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
			Captures:    "The value as it is right now, exact to the second: how many contacts, how many open jobs, the pipeline today.",
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
			AvoidanceResult: "Pages that are slow for no visible reason, and a count query that quietly becomes the app's bottleneck.",
			Triggers: []Trigger{
				{When: "Someone asks what the number was last month, or how it trended.", Then: "The rows can't tell you: start sampling it.", Climb: TierID(3)},
				{When: "The count sits on a hot path, or the indexed query is too slow at your scale.", Then: "Keep the value ready instead of computing it per read.", Climb: TierID(2)},
				{When: "The query plan scans the table.", Then: "Add the index the filter needs; that is still Tier 1."},
			},
			Build: []Step{
				{Title: "Index what you filter on", Snippet: "tier1_index.go.txt"},
				{Title: "Ask the database", Snippet: "tier1_query.go.txt"},
				{Title: "That is the whole tier", Note: "No job, no table, no cache. Climb only when a trigger below fires."},
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
			Summary:     "A scheduled job copies the current value into a history table.",
			Complexity:  "low to medium",
			Setup:       "a scheduled job and a history table keyed by date",
			Maintenance: "the job itself, and filling the gaps when a run fails",
			Captures:    "How a level moves over time: contacts at each month-end, the pipeline across the year.",
			Why:         "It is the first tier that keeps history the current rows cannot rebuild. Deleting a contact today leaves yesterday's row alone.",
			Pains: []string{
				"The cadence fixes the grain for good: sample daily and hourly questions never have an answer.",
				"It records levels, not flow: 3 created and 2 deleted in a day show up as +1, and the 3 and the 2 are gone.",
				"A failed run leaves a hole that the current rows can no longer fill.",
			},
			Avoidance: []Symptom{
				{ID: "soft_deletes_forever", Text: "Keeping soft-deleted rows forever to rebuild the past",
					Signals: "Someone needs history and is keeping it inside current-state tables: that is a snapshot's job (Tier 3), which leaves yesterday alone when a row is deleted."},
				{ID: "spreadsheet_tracking", Text: "Tracking the number by hand in a spreadsheet",
					Signals: "The history lives outside the system: a scheduled snapshot (Tier 3) makes it real, complete and current."},
			},
			AvoidanceResult: "Bloated tables, “deleted” rows leaking into live queries, and a spreadsheet that quietly becomes the real — always stale — source of truth.",
			Triggers: []Trigger{
				{When: "Someone asks for a rate, a conversion, time between states, or what caused a change.", Then: "Snapshots only hold levels: record each change as an event.", Climb: TierID(4)},
				{When: "Someone needs a finer grain than the cadence, or a moment between two samples.", Then: "No schedule can give that back: record the changes themselves.", Climb: TierID(4)},
				{When: "Attribution must survive later edits (the lead's source at the time of the sale).", Then: "Copy the value into an event when it happens.", Climb: TierID(4)},
				{When: "A run failed and left a gap.", Then: "Rerun it for that date as soon as you can; the upsert keyed by date makes reruns safe."},
			},
			Build: []Step{
				{Title: "A history table keyed by date", Snippet: "tier3_table.go.txt"},
				{Title: "A job that samples the current state", Snippet: "tier3_job.go.txt"},
				{Title: "Run it on a schedule", Snippet: "tier3_schedule.go.txt"},
			},
		},
		{
			ID: TierID(4), Kind: "tier", Tier: 4, Label: "Tier 4",
			Name:        "Event log + rollups",
			Summary:     "Record every occurrence as an immutable event and aggregate from the log.",
			Complexity:  "high — the biggest jump on the ladder",
			Setup:       "event definitions, emission at every change, a permanent events table, rollups, a registry of definitions",
			Maintenance: "rollup correctness and reconciliation; versioning events",
			Captures:    "Flow and causality, exactly: everything that happened, in order, with its values frozen at the time. Rates, conversion, time between states, attribution that does not drift.",
			Why:         "Churn becomes visible — the 3 and the 2 are both in the log. Attribution survives later edits because the event carries a copy of the value, not a pointer to it. Any new breakdown is a re-aggregation of the same events.",
			Pains: []string{
				"You only get the dimensions you copied into the payload; a new one starts counting from the day you add it.",
				"It records what happened; it does not rebuild an entity's arbitrary past state.",
				"The most moving parts so far: definitions, emission, rollups and their reconciliation.",
			},
			Avoidance: []Symptom{
				{ID: "rates_from_snapshots", Text: "Computing rates from same-period snapshots (this month's closes ÷ this month's leads)",
					Signals: "A rate needs flow. Dividing one period's outcomes by the same period's inputs mixes different cohorts and inverts under volume: count the events (Tier 4)."},
				{ID: "stored_ratios", Text: "Storing a daily ratio instead of its two counts",
					Signals: "A stored ratio cannot be re-aggregated — a week of daily rates averaged is an average of averages. Record the events and keep both counts (Tier 4)."},
				{ID: "diffed_state_events", Text: "Deriving “events” by diffing state at the end of each day",
					Signals: "Diffing invents events and timestamps and misses everything that cancelled out within the day: emit the event at the change (Tier 4)."},
			},
			AvoidanceResult: "Metrics that invert under volume, averages of averages, and an event log full of invented timestamps: the number feels wrong because it is wrong.",
			Triggers: []Trigger{
				{When: "You must rebuild what an entity looked like at an arbitrary past moment, or replay everything for an audit or a regulator.", Then: "Make the events the record.", Climb: TierID(5)},
				{When: "The number becomes tied to money, or must never undercount.", Then: "Commit each event with its change through an outbox.", Climb: string(LevelOutbox)},
				{When: "Another service needs the events.", Then: "Relay the outbox to a broker.", Climb: string(LevelBroker)},
				{When: "Reconciliation finds a group where the rollup and the recomputation disagree.", Then: "That is a caught bug: fix the incremental path and recompute from the events."},
				{When: "A new breakdown needs a dimension the payload lacks.", Then: "Add it to the definition as a new version; it counts from now on."},
			},
			Build: []Step{
				{Title: "Define the event, schema first", Snippet: "tier4_define.go.txt"},
				{Title: "Emit it at the moment of the change, values frozen", Snippet: "tier4_emit.go.txt"},
				{Title: "Roll up by recomputation, idempotently", Snippet: "tier4_rollup.go.txt"},
				{Title: "Reconcile: the recomputation is the auditor", Snippet: "tier4_reconcile.go.txt"},
			},
		},
		{
			ID: TierID(5), Kind: "tier", Tier: 5, Label: "Tier 5",
			Name:        "Event sourcing",
			Summary:     "The events are the record; current state is a projection you replay.",
			Complexity:  "high — the model inverts",
			Setup:       "an event store, replay, snapshots for replay speed",
			Maintenance: "versioning and upcasting old events forever; replay performance",
			Captures:    "Everything Tier 4 does, plus any entity's state at any past moment and full audit replay — including questions nobody anticipated.",
			Why:         "One source of truth. Any moment can be reconstructed; a broken projection is fixed and derived again from the same events; the strongest audit position there is.",
			Pains: []string{
				"The heaviest tier to build and to reason about, and overkill for most data.",
				"Replay time and old event versions become permanent concerns.",
				"Resist it unless you truly need reconstruction or regulatory replay.",
			},
			Avoidance: []Symptom{
				{ID: "audit_log_bolted_on", Text: "Bolting on an audit_log table",
					Signals: "Someone needs to know how records got to where they are. If arbitrary past state or replay is truly required, that is Tier 5; if not, Tier 4's events cover it."},
				{ID: "adhoc_history_columns", Text: "Adding history columns (previous_status, changed_at) one by one",
					Signals: "Each column answers one anticipated question about the past; the unanticipated ones need either events (Tier 4) or, for reconstruction, event sourcing (Tier 5)."},
				{ID: "changes_table", Text: "Keeping a changes table beside the real tables",
					Signals: "A second, partial record of what happened now competes with the tables: decide which is the truth — events as the record is Tier 5."},
			},
			AvoidanceResult: "History that covers only what someone anticipated, audit gaps exactly where nobody logged, and two sources of truth that disagree.",
			Triggers: []Trigger{
				{When: "Replaying an entity gets slow.", Then: "Snapshot the fold every N events and replay from the latest snapshot."},
				{When: "An old event's shape no longer fits the code.", Then: "Upcast it on read; never rewrite the stored event."},
				{When: "The stat turns out to be a live count, a trend or a rate.", Then: "Event sourcing is one tier (or more) too high for it: build the lower tier and keep Tier 5 for what must be replayed."},
			},
			Build: []Step{
				{Title: "Events are the only writes", Snippet: "tier5_append.go.txt"},
				{Title: "State is folded from the stream", Snippet: "tier5_fold.go.txt"},
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
			Why:         "The cheapest way to handle an event. Right when losing one now and then is genuinely fine: directional, insight-grade numbers.",
			Pains: []string{
				"An event is lost silently when the process crashes or the job fails.",
				"No dedup and no dead-letter.",
				"The event cannot be bound to the business transaction: either can commit without the other.",
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
				{Title: "Asynchronous, in a job (L2)", Snippet: "inprocess_async.go.txt", Note: "Survives the request, not a crash."},
			},
		},
		{
			ID: string(LevelOutbox), Kind: "level", Level: LevelOutbox, Label: "L3",
			Name:        "Outbox",
			Summary:     "Write the event in the same transaction as the change; a relay ships it.",
			Complexity:  "medium",
			Setup:       "an outbox table, a relay, idempotency keys (the event_id)",
			Maintenance: "watching the outbox, a dead-letter path, pruning what was relayed",
			Captures:    "Events that must not be lost and must commit atomically with the business write.",
			Why:         "It ends the dual-write problem: the change and its event commit together or not at all. It is the floor for money-grade numbers and for event sourcing.",
			Pains: []string{
				"Real machinery to run and to watch.",
				"The outbox is a queue — rows are mutable and pruned — so it is not your permanent record: project it into the events table.",
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
				{Title: "Write the event in the same transaction as the change", Snippet: "outbox_write.go.txt"},
				{Title: "A relay ships committed rows, then marks them", Snippet: "outbox_relay.go.txt"},
			},
		},
		{
			ID: string(LevelBroker), Kind: "level", Level: LevelBroker, Label: "L4",
			Name:        "Broker",
			Summary:     "Relay the outbox to a broker so other services consume the events.",
			Complexity:  "high (operations)",
			Setup:       "a broker (NATS JetStream in rung), consumers, schemas shared across teams, partitioning",
			Maintenance: "running the broker, consumer lag, ordering, replay",
			Captures:    "Durable delivery to consumers outside your process.",
			Why:         "Services are decoupled by a stream of events: any number of independent consumers, each able to replay.",
			Pains: []string{
				"Operational weight: a broker to run.",
				"Ordering and lag to reason about.",
				"Schemas evolving across teams.",
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
			Captures:    "Pre-identity, high-frequency web signals — page views, clicks — feeding top-of-funnel marketing stats.",
			Why:         "Built for a volume no outbox could carry. Lossy by design: one page view is worthless, the aggregate is everything. It stitches to a business event when a visitor becomes a lead.",
			Pains: []string{
				"A whole second store to operate.",
				"Never a system of record.",
				"It must not share the business events table.",
			},
			Avoidance: []Symptom{
				{ID: "pageviews_in_outbox", Text: "Putting page views into the same events or outbox table as business events",
					Signals: "Anonymous, high-volume signals are drowning the business events. Collect them into a telemetry sink, pre-aggregate them, and stitch to a business event at conversion."},
			},
			AvoidanceResult: "The outbox and the database drown in billions of near-worthless rows, business events get lost among them, and retention becomes a nightmare.",
			Triggers: []Trigger{
				{When: "A signal turns into money — a lead, a sale.", Then: "Stitch it into a business event at conversion, freezing the attribution, and count money from the events table.", Climb: string(LevelOutbox)},
				{When: "Someone wants a money-grade number straight from page views.", Then: "Never from the sink: the sink is lossy and not a record. Count the stitched business events.", Climb: string(LevelOutbox)},
				{When: "The collector starts dropping signals under load.", Then: "Watch the drop counters per reason; grow the buffer or the flush rate, not the guarantees."},
			},
			Build: []Step{
				{Title: "A thin collector: accept, validate, buffer, 202", Snippet: "sink_collect.go.txt"},
				{Title: "Batch-flush into the columnar store, pre-aggregating", Snippet: "sink_flush.go.txt"},
				{Title: "Stitch to a business event at conversion", Snippet: "sink_stitch.go.txt"},
			},
		},
	}
}
