// Package place owns rung's placement engine: the questionnaire that tells a team which
// rung of the ladder a stat needs — the tier (1 live query, 2 cached state, 3 periodic
// snapshot, 4 event log + rollups, 5 event sourcing) and, from Tier 4 up, the event level
// (in-process, outbox, broker, telemetry sink) — and the content behind the answer: a
// card per tier and per level (cost, why it works, pains and hard limits, what people do
// to avoid it, the triggers that say climb, and how to build it with rung's own
// packages), the tier × level matrix with a verdict and a reason in every cell, and the
// symptoms that give away a stat built on the wrong rung.
//
// The facts come from the ladder (shared/reference/ladder.txt); the words are rung's.
//
// One Engine serves three faces of the same decision: the JSON API and the /place page
// (Handler, a standard-library http.Handler that package collector mounts), and the
// terminal interview (Interview and WriteText, used by `rung place`). The question ids
// are a public contract: renaming one breaks every saved answers file.
//
// The engine is pure: it holds no state beyond its parsed content and templates, does
// no I/O of its own and starts no goroutines, so one Engine is safe for concurrent use.
package place
