package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer"
)

// Defaults of StreamConfig.
const (
	DefaultName       = "RUNG_SIGNALS"
	DefaultSubject    = "rung.signals"
	DefaultPartitions = 64
	DefaultDuplicates = 2 * time.Minute
)

// StreamConfig describes the stream. Collectors and aggregators must agree on Name,
// Subject and Partitions; Ensure checks Partitions against the stream itself.
type StreamConfig struct {
	Name       string        // stream name; DefaultName when empty
	Subject    string        // subject prefix: partition p is <Subject>.<p>; DefaultSubject when empty
	Partitions int           // P, fixed when the stream is made; DefaultPartitions when 0
	Replicas   int           // 1 on one server, 3 in a cluster; 1 when 0
	MaxBytes   int64         // bound of the stream; a full stream refuses new signals. 0: unbounded
	Duplicates time.Duration // window in which a repeated event_id is dropped; DefaultDuplicates when 0
	// Memory keeps the stream in memory instead of files: for tests and benchmarks only.
	// Besides losing everything on restart, nats-server 2.9.10's memory store was seen
	// to ack signals past MaxBytes and then drop the oldest despite Discard new.
	Memory bool
}

func (c *StreamConfig) defaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
}

// PartitionSubject returns the subject partition p is published on.
func (c StreamConfig) PartitionSubject(p int) string {
	c.defaults()
	return c.Subject + "." + strconv.Itoa(p)
}

// PartitionOf returns the partition of an anonymous_id: buffer.ShardOf, so the stream,
// the aggregator's buffer and the ClickHouse shards all split visitors the same way.
func PartitionOf(anonymousID string, partitions int) int {
	return buffer.ShardOf(anonymousID, partitions)
}

// description is how the partition count is recorded in the stream: nats-server 2.9
// has no stream metadata, and the count must survive as long as the stream does.
func description(partitions int) string {
	return "rung partitions=" + strconv.Itoa(partitions)
}

func partitionsOf(desc string) (int, error) {
	v, ok := strings.CutPrefix(desc, "rung partitions=")
	if !ok {
		return 0, fmt.Errorf("description %q does not record rung partitions (not a rung stream?)", desc)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("description %q: bad partition count", desc)
	}
	return n, nil
}

// Ensure makes the stream cfg describes, or checks the one that exists: its partition
// count must be cfg.Partitions, since changing P would move visitors to other
// partitions under running aggregators. An existing stream is otherwise left as it is.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	cfg.defaults()
	if cfg.Partitions < 1 {
		return fmt.Errorf("stream %s: partitions %d: want at least 1", cfg.Name, cfg.Partitions)
	}
	s, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		return checkPartitions(cfg, s.CachedInfo())
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: description(cfg.Partitions),
		Subjects:    []string{cfg.Subject + ".*"},
		// A work queue: a signal leaves the stream once its aggregator has acked it,
		// so MaxBytes bounds the backlog, not the history, and a durable made again
		// after its node was lost finds only what was never acked.
		Retention:  jetstream.WorkQueuePolicy,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   cfg.MaxBytes,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.Duplicates,
		Storage:    jetstream.FileStorage,
	}
	if cfg.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	if cfg.Memory {
		sc.Storage = jetstream.MemoryStorage
	}
	err = createStream(ctx, js, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another process made it first: check what it made.
		s, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		return checkPartitions(cfg, s.CachedInfo())
	}
	if err != nil {
		return fmt.Errorf("create stream %s (subjects %s.*, %d partitions, %d replicas): %w",
			cfg.Name, cfg.Subject, cfg.Partitions, cfg.Replicas, err)
	}
	return nil
}

// placementWait bounds how long Ensure waits for a cluster that cannot place the stream
// yet: nodes started together answer JetStream requests as soon as they elect a meta
// leader, a moment before the leader knows enough peers to place R3.
const placementWait = 30 * time.Second

// createStream creates sc, retrying while the cluster is still forming.
func createStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	deadline := time.Now().Add(placementWait)
	wait := 100 * time.Millisecond
	for {
		_, err := js.CreateStream(ctx, sc)
		if err == nil || !forming(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// forming reports whether err is what a JetStream cluster answers while its nodes are
// still finding each other.
func forming(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode {
	case 10005, // no suitable peers for placement
		10008: // JetStream system temporarily unavailable
		return true
	}
	return false
}

func checkPartitions(cfg StreamConfig, info *jetstream.StreamInfo) error {
	n, err := partitionsOf(info.Config.Description)
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if n != cfg.Partitions {
		return fmt.Errorf("stream %s has %d partitions, configured %d: the partition count is fixed when the stream is made (use the same count, or a new stream)",
			cfg.Name, n, cfg.Partitions)
	}
	return nil
}

// ParsePartitions parses a list of partitions and ranges such as "0-31,40,42-43" into
// sorted, distinct partition numbers, each below partitions.
func ParsePartitions(spec string, partitions int) ([]int, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("partitions %q: empty", spec)
	}
	seen := make([]bool, partitions)
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		from, err := partitionNumber(lo, partitions)
		if err != nil {
			return nil, fmt.Errorf("partitions %q: %q: %w", spec, part, err)
		}
		to := from
		if isRange {
			if to, err = partitionNumber(hi, partitions); err != nil {
				return nil, fmt.Errorf("partitions %q: %q: %w", spec, part, err)
			}
			if to < from {
				return nil, fmt.Errorf("partitions %q: %q: range runs backwards", spec, part)
			}
		}
		for p := from; p <= to; p++ {
			if seen[p] {
				return nil, fmt.Errorf("partitions %q: partition %d listed twice", spec, p)
			}
			seen[p] = true
		}
	}
	var ps []int
	for p, ok := range seen {
		if ok {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func partitionNumber(s string, partitions int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a partition number", s)
	}
	if n < 0 || n >= partitions {
		return 0, fmt.Errorf("partition %d out of range: the stream has partitions 0-%d", n, partitions-1)
	}
	return n, nil
}
