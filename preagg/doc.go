// Package preagg is the write side of the numbers rung exists to answer: the
// sessionizer that rolls sessions, landing-page conversion and experiment exposure
// forward on every flush (Aggregator), Restore, which reloads the open sessions on
// start, and Reconcile, which recomputes every rollup from the raw signals and reports
// each difference. The read side, the queries and their statistics, is package
// preagg/stats; the HTTP surface over it is package preagg/dashboard.
//
// Reconcile lives here rather than with the queries because it checks this package's
// own work: it uses the sessionizer's rules (Config.Rules) and the session definitions
// below, and a mismatch it reports is a fault of the write path, never of a query.
//
// # Sessions
//
// Sessions are pre-rolled into the raw signals: each stored signal carries session_ms,
// the start of the session it was counted in (0 for a bot or a duplicate), decided as
// it arrives (see package sink). A visitor is (site, anonymous_id).
//
// # Order
//
// A visitor's signals are totally ordered by (event time, sequence) as stored:
// event_ms, the event time (schemas.EventTime: the client's ts corrected by its
// sent_at, or the receive time) as the sessionizer placed it, and seq, the arrival
// sequence (schemas.Sequence). The sessionizer makes the two agree. It takes each
// flush's signals in arrival order, by sequence (a buffer shard, a stream partition,
// keeps a visitor's signals in the order they came, and sorting by sequence makes the
// result independent of where the flushes were cut), and places each strictly after
// the visitor's last counted signal: a signal whose event time is not later than that
// is late, and is placed 1 ms after it, its raw row included (counted in
// rung_preagg_late_signals_total). So the counted signals of a visitor have distinct,
// increasing event times, and the recomputation, the restore after a restart and
// another aggregator of a cluster read the same order from the store. Within one
// request, t.js's signals are numbered in the order of their event times, so a replayed
// queue is placed when its signals were made.
//
// A signal can also arrive behind a session that is closed and out of memory. Visitors
// therefore stay in memory for Config.LateWindow (an hour) after their session closes,
// and a signal of a visitor not in memory is placed no earlier than the late window
// before the newest event time its shard has placed. Any session of theirs that left
// memory ended a timeout and the late window before that newest time, so the signal can
// neither join it nor come before it. The window is a bound on how late a signal may be
// and still be placed when it was made; the decoder's own bound (a day, as long as t.js
// keeps a queue) only keeps clients from placing signals anywhere at all.
//
// A session starts at a visitor's first signal and after every gap of at least the
// session timeout (30 minutes by default). Its landing page is the path of its first
// pageview, and its utm values come from that same pageview. A session without a
// pageview is counted under the landing page "" until its first pageview arrives, when
// it moves. A session converts when it holds an event whose name is a goal. A visitor's
// variant in an experiment is that of their first exposure, and they convert when a
// goal comes strictly after it. Bot signals are stored and otherwise ignored.
//
// A signal whose event_id the visitor already sent in the current session is a
// duplicate: stored raw (placed after the visitor's last signal, so the first copy stays
// the earliest), counted once. The sessionizer remembers a visitor's event_ids while
// their session is open (and across a restart, see below); on one node a copy arriving
// after the session closed is counted again, and reconcile, which deduplicates over all
// time, reports it (rung aggregate drops every copy the sink already holds first).
//
// # Memory
//
// State is sharded by buffer.ShardOf(anonymous_id), the hash that shards the buffer,
// the NATS subjects and ClickHouse, so in a cluster an aggregator owns exactly the
// sessions of its partitions. A shard keeps its visitors in a list by last activity:
// visitors whose session has closed and the late window passed (a timeout and the
// window behind the newest signal placed) leave memory at the next flush that touches
// the shard, and when a shard is at its share of MaxOpenSessions the least recently
// active visitor is evicted and counted (rung_preagg_sessions_evicted_total); if that
// visitor comes back within the timeout their session is counted twice, which reconcile
// reports.
//
// # Flushes are transactions
//
// A flush rolls the batch into the sessions under the locks of the shards it touches,
// hands the raw signals and the rollup rows to the sink, then commits the new state, or
// rolls it back when the sink gave up so the sessions never count signals the sink does
// not hold. The rows are absolute values with versions (see package sink), so a flush
// the sink retried after an ambiguous failure counts once. Two flushers never touch one
// shard when Config.Shards equals the buffer's shard count (the default of both); with
// other counts they take turns.
//
// # Restarts
//
// Nothing pre-rolled lives only in memory: every flush writes the state it changed. On
// start, Restore reloads the sessions that may still be open, or closed within the late
// window (each visitor's latest session, if they have a signal within the timeout and
// the window of the newest stored one), by replaying the signals counted in them, so a
// visitor who comes back after a restart continues the same session, exactly as the
// recomputation from raw signals sees it.
// The store hands them over in chunks of bounded size (a restart on millions of open
// visitors must not need them all at once, in rung or in ClickHouse), at most
// MaxOpenSessions, the most recently active first. A cluster's aggregator restores only
// the partitions it owns. Signals held in the buffer at a crash are lost before they
// reach the sessionizer or the sink, so they are missing from both alike.
package preagg
