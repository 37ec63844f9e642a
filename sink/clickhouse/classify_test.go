package clickhouse

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// TestClassify provokes each error from the real server and driver and checks its
// class, and that Write gives up on it after as many attempts as the class allows.
func TestClassify(t *testing.T) {
	write := func(alter string) func(t *testing.T, c *ClickHouse) error {
		return func(t *testing.T, c *ClickHouse) error {
			if err := c.conn.Exec(context.Background(), "ALTER TABLE "+c.db+".signals "+alter); err != nil {
				t.Fatal(err)
			}
			b := &sink.Batch{Signals: []schemas.Signal{{Type: schemas.TypePageview, EventID: "e", Site: "s",
				AnonymousID: "a", ReceivedAt: 1700000000000, HasValue: true, Value: 1}}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := c.Write(ctx, b)
			var we *sink.WriteError
			if !errors.As(err, &we) || we.Class != sink.Permanent || we.Attempts != 1 || we.Table != c.db+".signals" {
				t.Errorf("Write gave up with %#v (%v), want a permanent *sink.WriteError of %s.signals after 1 attempt", we, err, c.db)
			}
			return errors.Unwrap(we)
		}
	}
	for _, c := range []struct {
		name    string
		provoke func(t *testing.T, c *ClickHouse) error
		want    sink.Class
		text    string
	}{
		{"column of another type", write("MODIFY COLUMN value String"), sink.Permanent, "converting []*float64 to String"},
		{"missing column", write("DROP COLUMN props"), sink.Permanent, "No such column props"},
		{"unknown table", func(t *testing.T, c *ClickHouse) error {
			_, err := c.conn.PrepareBatch(context.Background(), "INSERT INTO "+c.db+".no_such_table (x)")
			return err
		}, sink.Permanent, "code: 60"},
		{"memory limit", func(t *testing.T, c *ClickHouse) error {
			return overMemory(c)
		}, sink.Transient, "code: 241"},
		{"connection refused", func(t *testing.T, c *ClickHouse) error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: time.Second})
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.Ping(context.Background())
		}, sink.Unreachable, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.provoke(t, openTest(t))
			if err == nil {
				t.Fatal("no error provoked")
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("provoked %v, want an error saying %q", err, c.text)
			}
			if got := classify(err); got != c.want {
				t.Errorf("classify(%v) = %v, want %v", err, got, c.want)
			}
		})
	}
}

// A transient error is tried MaxServerAttempts times, then given up: never for ever.
func TestTransientBounded(t *testing.T) {
	set := metrics.NewSet()
	c := openWith(t, Options{MaxServerAttempts: 3}, set)
	tries := 0
	err := c.retry.Do(context.Background(), "t", func() error {
		tries++
		return overMemory(c)
	})
	var we *sink.WriteError
	if !errors.As(err, &we) || we.Class != sink.Transient || tries != 3 || we.Attempts != 3 {
		t.Errorf("gave up after %d tries with %v, want a transient error after 3", tries, err)
	}
	if r := set.GetOrCreateCounter("rung_sink_retries_total").Get(); r != 2 {
		t.Errorf("retries counted %d, want 2", r)
	}
}

// overMemory runs a query over its memory limit: MEMORY_LIMIT_EXCEEDED, the server's
// overload error that is simplest to provoke.
func overMemory(c *ClickHouse) error {
	ctx := ch.Context(context.Background(), ch.WithSettings(ch.Settings{"max_memory_usage": 100000}))
	var n uint64
	return c.conn.QueryRow(ctx, "SELECT length(groupArray(number)) FROM numbers(10000000)").Scan(&n)
}
