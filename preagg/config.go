package preagg

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rungdev/rung/sink"
)

// Config sets the sessionization rules and the memory bounds. The zero value of a field
// takes its default.
type Config struct {
	// SessionTimeout is the inactivity that ends a session; default 30 minutes.
	SessionTimeout time.Duration
	// LateWindow is how long after their session closed a visitor stays in memory, so
	// that a signal arriving late (a replayed queue, a slow request) still finds its
	// place among theirs; default 1 hour. A signal of a visitor not in memory is placed
	// no earlier than the window before the newest signal of its shard.
	LateWindow time.Duration
	// Goals are the event names that are conversions; default form_submitted.
	Goals []string
	// Shards partitions the state by buffer.ShardOf(anonymous_id); default 64. Give it
	// the buffer's shard count so no two flushers share a shard.
	Shards int
	// Lanes groups the shards (shard % Lanes) under one lock and one rollup cell;
	// default 4. Give it the buffer's flusher count: the buffer hands shard i to flusher
	// i % flushers, so each flusher then has a lane to itself.
	Lanes int
	// MaxOpenSessions bounds the visitors held in memory; default 1,000,000.
	MaxOpenSessions int
	// MaxEventIDs bounds the event_ids remembered per session for deduplication;
	// default 4096. A session past it stops deduplicating (counted).
	MaxEventIDs int
	// CellKeys is how many landing keys a rollup cell holds before it is retired and a
	// fresh one takes over; default 20,000.
	CellKeys int
}

// DefaultGoal is the conversion goal unless told otherwise.
const DefaultGoal = "form_submitted"

func (c *Config) defaults() {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Minute
	}
	if len(c.Goals) == 0 {
		c.Goals = []string{DefaultGoal}
	}
	if c.LateWindow == 0 {
		c.LateWindow = time.Hour
	}
	if c.Shards == 0 {
		c.Shards = 64
	}
	if c.Lanes == 0 {
		c.Lanes = 4
	}
	if c.MaxOpenSessions == 0 {
		c.MaxOpenSessions = 1_000_000
	}
	if c.MaxEventIDs == 0 {
		c.MaxEventIDs = 4096
	}
	if c.CellKeys == 0 {
		c.CellKeys = 20_000
	}
}

// Validate reports every setting that cannot work, after defaults.
func (c Config) Validate() error {
	c.defaults()
	var errs []error
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session timeout %v: must be at least 1s", c.SessionTimeout))
	}
	if c.LateWindow < 0 {
		errs = append(errs, fmt.Errorf("late window %v: must not be negative", c.LateWindow))
	}
	for _, g := range c.Goals {
		if strings.TrimSpace(g) == "" {
			errs = append(errs, errors.New("goals: an empty goal name"))
		}
	}
	if c.Shards < 1 {
		errs = append(errs, fmt.Errorf("shards %d: must be at least 1", c.Shards))
	}
	if c.Lanes < 1 || c.Lanes > c.Shards {
		errs = append(errs, fmt.Errorf("lanes %d: must be from 1 to the shard count %d", c.Lanes, c.Shards))
	}
	if c.MaxOpenSessions < c.Shards {
		errs = append(errs, fmt.Errorf("max open sessions %d: must be at least the shard count %d", c.MaxOpenSessions, c.Shards))
	}
	if c.MaxEventIDs < 1 {
		errs = append(errs, fmt.Errorf("max event ids %d: must be at least 1", c.MaxEventIDs))
	}
	if c.CellKeys < 1 {
		errs = append(errs, fmt.Errorf("cell keys %d: must be at least 1", c.CellKeys))
	}
	return errors.Join(errs...)
}

// Rules returns the sessionization rules, for the recomputation from raw signals.
func (c Config) Rules() sink.Rules {
	c.defaults()
	return sink.Rules{SessionTimeoutMs: c.SessionTimeout.Milliseconds(), Goals: append([]string(nil), c.Goals...)}
}

// ParseGoals splits a comma-separated list of goal names, for flags.
func ParseGoals(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}
