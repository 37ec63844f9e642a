package stream_test

import (
	"context"
	"log"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/schemas"
)

// A collector makes sure the stream exists and publishes; it answers 202 for the
// signals whose errs[i] is nil.
func ExamplePublisher() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cfg := stream.StreamConfig{Partitions: 64, Replicas: 1, MaxBytes: 8 << 30}
	if err := stream.Ensure(ctx, js, cfg); err != nil {
		log.Fatal(err)
	}
	p, err := stream.NewPublisher(nc, stream.PublisherConfig{Stream: cfg}, metrics.NewSet())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	signals := []*schemas.Signal{{Type: schemas.TypePageview, AnonymousID: "v1", EventID: "e1", Site: "example.com"}}
	errs := make([]error, len(signals))
	p.Append(ctx, signals, errs) // errs[i]: nil, buffer.ErrFull (503) or buffer.ErrClosed
}

// An aggregator owns partitions 0-31 and acks what its sink holds.
func ExampleConsumer() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cfg := stream.StreamConfig{Partitions: 64}
	parts, err := stream.ParsePartitions("0-31", cfg.Partitions)
	if err != nil {
		log.Fatal(err)
	}
	c, err := stream.NewConsumer(js, stream.ConsumerConfig{Stream: cfg, Partitions: parts},
		func(ctx context.Context, signals []schemas.Signal, redelivered []bool) error {
			return nil // buffer → preagg → sink; drop redelivered signals already stored
		}, metrics.NewSet())
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil { // until ctx is cancelled
		log.Fatal(err)
	}
}
