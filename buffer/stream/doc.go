// Package stream owns the durable buffer of a rung cluster: the NATS JetStream stream
// between stateless collectors and the aggregators.
//
// It decides how signals are partitioned (xxhash of anonymous_id mod P, the same hash as
// buffer.ShardOf, onto subjects <prefix>.<p>, P fixed when the stream is made and
// recorded in its description), how a signal is written on the wire (a versioned
// compact binary codec), when a collector may answer 202 (Publisher.Append returns only
// after JetStream acked every signal, deduplicated by event_id through Nats-Msg-Id), and
// when a signal leaves the stream (Consumer acks a message only after the handler put
// the batch that holds it into the sink; anything not acked comes back, flagged as a
// redelivery so the aggregator can drop replay duplicates by event_id).
//
// Concurrency: Publisher.Append may be called from any number of goroutines. A
// Consumer owns one goroutine per partition it reads and one batcher goroutine that
// calls the handler; Run starts them and returns when all have exited.
package stream
