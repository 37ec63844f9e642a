// Package stream owns the durable buffer of a rung cluster: the NATS JetStream stream
// between stateless collectors and the aggregators.
//
// It decides how signals are partitioned (xxhash of anonymous_id mod P, the same hash as
// buffer.ShardOf, onto subjects <prefix>.<p>, P fixed when the stream is made and
// recorded in its description), how signals are written on the wire (a versioned
// compact binary codec; a message holds the frames of the signals bound for one
// partition from every request that arrived while the partition's previous message
// waited for its ack — group commit — so JetStream stores a message per partition per
// round trip, not one per signal), when a collector may answer 202 (Publisher.Append
// returns only after JetStream acked the messages holding its signals; a message is
// retried with the same Nats-Msg-Id, a lone signal's site, visitor and event_id or else
// a hash of the frames' keys, so the publisher's own retries are dropped; no attempt
// outlives the answer, and nothing is published while the connection is down), and when
// a signal leaves the stream (it is a work queue: Consumer acks a message only after
// the handler put the batch that holds it into the sink; anything not acked comes back,
// flagged as a redelivery).
//
// A client that retries a request whose answer it never saw, or that was answered 503
// while JetStream may have stored it (counted as unsure), is not deduplicated here (its
// signals land in other messages): the aggregator looks every batch up in the sink and
// stores a (visitor, event_id) once.
//
// Concurrency: Publisher.Append may be called from any number of goroutines. A
// Consumer owns one goroutine per partition it reads and one batcher goroutine that
// calls the handler; Run starts them and returns when all have exited.
package stream
