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
// it arrives (see package sink). A visitor is (site, anonymous_id). Their signals are
// taken in the order the flushes deliver them, which is received_at order: a signal
// that arrives with a received_at earlier than the visitor's last one ("late", from two
// requests racing) is moved up to that time, in the raw row too, so the pre-rolled
// sessions and the raw signals always describe the same timeline. A session starts at a visitor's first signal and after
// every gap of at least the session timeout (30 minutes by default). Its landing page is
// the path of its first pageview, ties within one millisecond going to the smallest
// (path, utm_source, utm_medium, utm_campaign), and its utm values come from that same
// pageview. A session without a pageview is counted under the landing page "" until its
// first pageview arrives, when it moves. A session converts when it holds an event whose
// name is a goal. Bot signals are stored and otherwise ignored.
//
// A signal whose event_id the visitor already sent in the current session is a
// duplicate: stored raw, counted once. The sessionizer remembers a visitor's event_ids
// while their session is open (and across a restart, see below); a copy arriving after
// the session closed is counted again, and reconcile, which deduplicates over all time,
// reports it.
//
// # Memory
//
// State is sharded by buffer.ShardOf(anonymous_id), the hash that shards the buffer,
// the NATS subjects and ClickHouse, so in a cluster an aggregator owns exactly the
// sessions of its partitions. A shard keeps its visitors in a list by last activity:
// visitors whose session has closed (a timeout behind the newest signal seen) leave
// memory at the next flush that touches the shard, and when a shard is at its share of
// MaxOpenSessions the least recently active visitor is evicted and counted
// (rung_preagg_sessions_evicted_total); if that visitor comes back within the timeout
// their session is counted twice, which reconcile reports.
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
// start, Restore reloads the sessions that may still be open (each visitor's latest
// session, if they have a signal within the timeout of the newest stored one) by
// replaying the signals counted in them, so a visitor who comes back after a restart
// continues the same session, exactly as the recomputation from raw signals sees it.
// The store hands them over in chunks of bounded size (a restart on millions of open
// visitors must not need them all at once, in rung or in ClickHouse), at most
// MaxOpenSessions, the most recently active first. A cluster's aggregator restores only
// the partitions it owns. Signals held in the buffer at a crash are lost before they
// reach the sessionizer or the sink, so they are missing from both alike.
package preagg
