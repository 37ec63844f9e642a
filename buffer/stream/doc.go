// Package stream owns the durable buffer of a rung cluster: the NATS JetStream stream
// between stateless collectors and the aggregators.
//
// It decides how signals are partitioned (xxhash of anonymous_id mod P, the same hash as
// buffer.ShardOf, onto subjects <prefix>.<p>, P fixed when the stream is made and
// recorded in its description), how signals are written on the wire (a versioned
// compact binary codec; a message holds the frames of one request's signals bound for
// one partition, so JetStream stores a few messages per batch, not one per signal),
// when a collector may answer 202 (Publisher.Append returns only after JetStream acked
// every message, deduplicated through Nats-Msg-Id: a lone signal's event_id, else a hash
// of the frame's event_ids, so the publisher's own retries are dropped), and when a
// signal leaves the stream (it is a work queue: Consumer acks a message only after the
// handler put the batch that holds it into the sink; anything not acked comes back,
// flagged as a redelivery so the aggregator can drop replay duplicates by event_id).
//
// A client that retries a request whose 202 it never saw, batched differently, is not
// deduplicated here: as on one node, its repeated signals are stored again and counted
// once (the sessionizer remembers event_ids).
//
// Concurrency: Publisher.Append may be called from any number of goroutines. A
// Consumer owns one goroutine per partition it reads and one batcher goroutine that
// calls the handler; Run starts them and returns when all have exited.
package stream
