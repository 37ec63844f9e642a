package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/stitch/outbox"
)

// joinStream connects to NATS and makes sure the signals stream exists: the first step
// of both cluster roles, the collector (`serve --nats`) and `aggregate`. The connection
// keeps reconnecting for ever: a NATS node down is a wait, not a failure.
func joinStream(ctx context.Context, c *streamConfig, role string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, stream.StreamConfig, error) {
	scfg := stream.StreamConfig{Name: c.Stream, Subject: c.Subject, Partitions: c.Partitions, Replicas: c.Replicas, MaxBytes: c.StreamBytes}
	opts := []nats.Option{nats.Name("rung " + role)}
	if role == "collector" {
		// A publish buffered while the connection is down would be sent after its
		// request was answered 503 (see stream.NewPublisher).
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	nc, err := outbox.Connect(c.NATS, log, opts...)
	if err != nil {
		return nil, nil, scfg, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, scfg, fmt.Errorf("jetstream on %s: %w", c.NATS, err)
	}
	if err := stream.Ensure(ctx, js, scfg); err != nil {
		nc.Close()
		return nil, nil, scfg, fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	return nc, js, scfg, nil
}

// streamReady is /readyz of a cluster collector: connected, and the stream answers.
func streamReady(nc *nats.Conn, js jetstream.JetStream, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		return nil
	}
}
