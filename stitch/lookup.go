package stitch

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// LookupConfig sets the attribution cache. Zero values take the defaults given.
type LookupConfig struct {
	// TTL is how long an attribution is served from memory. Keep it short: a visitor
	// converting now may be clicking through right now, and the sink itself lags by a
	// buffer flush. Default 5s; negative disables the cache.
	TTL time.Duration
	// MaxEntries bounds the cache; default 10000.
	MaxEntries int
}

// Lookup reads visitors' attribution from the sink, with a short-lived in-memory cache
// for the visitors converting now. Safe for concurrent use.
type Lookup struct {
	src Signals
	cfg LookupConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cached // guarded by mu

	hits, misses, errs atomic.Int64
}

type cached struct {
	a       Attribution
	expires time.Time
}

// NewLookup returns a Lookup reading from src.
func NewLookup(src Signals, cfg LookupConfig) (*Lookup, error) {
	if src == nil {
		return nil, fmt.Errorf("attribution lookup needs a signal source")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 10000
	}
	if cfg.MaxEntries < 0 {
		return nil, fmt.Errorf("attribution cache size %d is negative", cfg.MaxEntries)
	}
	return &Lookup{src: src, cfg: cfg, now: time.Now, entries: map[string]cached{}}, nil
}

// ValidAnonymousID reports whether id is something t.js makes: 8–64 of [A-Za-z0-9_-].
func ValidAnonymousID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Attribution returns the visitor's attribution as the sink knows it now. An empty id (a
// lead that came without one) and a visitor the sink has never seen both give an empty
// attribution and no error; a malformed id is ErrInvalidAnonymousID. The returned value
// is the caller's: its Variants map is a fresh copy.
func (l *Lookup) Attribution(ctx context.Context, anonymousID string) (Attribution, error) {
	if anonymousID == "" {
		return Attribution{}, nil
	}
	if !ValidAnonymousID(anonymousID) {
		return Attribution{}, fmt.Errorf("%w: %q must be 8–64 characters of [A-Za-z0-9_-]", ErrInvalidAnonymousID, anonymousID)
	}
	now := l.now()
	if l.cfg.TTL > 0 {
		l.mu.Lock()
		c, ok := l.entries[anonymousID]
		l.mu.Unlock()
		if ok && now.Before(c.expires) {
			l.hits.Add(1)
			return c.a.clone(), nil
		}
	}
	l.misses.Add(1)
	signals, err := l.src.VisitorSignals(ctx, anonymousID)
	if err != nil {
		l.errs.Add(1)
		return Attribution{}, fmt.Errorf("%w of %s: %w", ErrSignals, anonymousID, err)
	}
	a := Attribute(anonymousID, signals)
	if l.cfg.TTL > 0 {
		l.store(anonymousID, a, now)
	}
	return a.clone(), nil
}

func (l *Lookup) store(id string, a Attribution, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= l.cfg.MaxEntries {
		for k, c := range l.entries {
			if !now.Before(c.expires) {
				delete(l.entries, k)
			}
		}
		// Still full of live entries: drop arbitrary ones; they are a cache, the sink has them.
		for k := range l.entries {
			if len(l.entries) < l.cfg.MaxEntries {
				break
			}
			delete(l.entries, k)
		}
	}
	if l.cfg.MaxEntries > 0 {
		l.entries[id] = cached{a: a, expires: now.Add(l.cfg.TTL)}
	}
}

func (a Attribution) clone() Attribution {
	if a.Variants != nil {
		v := make(map[string]string, len(a.Variants))
		for k, x := range a.Variants {
			v[k] = x
		}
		a.Variants = v
	}
	return a
}

// WriteMetrics writes the lookup's counters in Prometheus text format.
func (l *Lookup) WriteMetrics(w io.Writer) {
	fmt.Fprintf(w, "# HELP rung_attribution_lookups_total Attribution lookups by outcome.\n# TYPE rung_attribution_lookups_total counter\n")
	fmt.Fprintf(w, "rung_attribution_lookups_total{result=\"cache_hit\"} %d\n", l.hits.Load())
	fmt.Fprintf(w, "rung_attribution_lookups_total{result=\"sink_read\"} %d\n", l.misses.Load())
	fmt.Fprintf(w, "rung_attribution_lookups_total{result=\"error\"} %d\n", l.errs.Load())
}
