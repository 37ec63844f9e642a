package collector

import (
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// saltLife is how long a salt hashes new keys; it is kept as the previous day's for as
// long again, then zeroed.
const saltLife = 24 * time.Hour

// salts is the secret mixed into every hash of a client address, so that the hash of an
// address cannot be recomputed from the address alone, and a hash seen one day cannot be
// matched to the same address two days later. A salt is random, lives in this process's
// memory only (never written, never logged), hashes keys for 24 hours from when it was
// made, is then kept as the previous day's (so a key derived just before the rotation can
// still be matched) until 48 hours after it was made, and is then zeroed.
//
// The rate limiter needs only the current salt; the previous one is there for keys that
// must survive midnight, such as a visitor key.
type salts struct {
	random func([]byte) // fills a new salt: crypto/rand.Read in production

	mu   sync.RWMutex
	cur  salt
	prev salt
}

type salt struct {
	key  [16]byte
	made time.Time // zero: no salt
}

func newSalts(random func([]byte)) *salts { return &salts{random: random} }

// sum returns the salted hash of b under the salt current at now, making a new salt first
// when the current one is older than a day. It does not allocate.
func (s *salts) sum(b []byte, now time.Time) uint64 {
	for {
		s.mu.RLock()
		if s.cur.fresh(now) {
			h := s.cur.sum(b)
			s.mu.RUnlock()
			return h
		}
		s.mu.RUnlock()
		s.rotate(now)
	}
}

// sumPrevious returns the salted hash of b under the previous day's salt, if it is still
// kept at now.
func (s *salts) sumPrevious(b []byte, now time.Time) (uint64, bool) {
	s.expire(now)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.prev.made.IsZero() {
		return 0, false
	}
	return s.prev.sum(b), true
}

// rotate makes a new salt when the current one is older than a day (or there is none),
// keeping the current one as the previous day's, and zeroes what is past 48 hours.
func (s *salts) rotate(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cur.fresh(now) {
		s.prev.zero()
		s.prev = s.cur
		s.cur = salt{made: now}
		s.random(s.cur.key[:])
	}
	s.expireLocked(now)
}

// expire zeroes the previous day's salt once it is 48 hours old, and the current one if
// it is (after two idle days, before any request made a new one). It returns how long
// until there is something to expire again; 0 when no salt is kept.
func (s *salts) expire(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expireLocked(now)
}

// Lock should be held.
func (s *salts) expireLocked(now time.Time) time.Duration {
	if !s.prev.made.IsZero() && now.Sub(s.prev.made) >= 2*saltLife {
		s.prev.zero()
	}
	if !s.cur.made.IsZero() && now.Sub(s.cur.made) >= 2*saltLife {
		s.cur.zero()
	}
	switch {
	case !s.prev.made.IsZero():
		return s.prev.made.Add(2 * saltLife).Sub(now)
	case !s.cur.made.IsZero():
		return s.cur.made.Add(2 * saltLife).Sub(now)
	}
	return 0
}

func (t *salt) fresh(now time.Time) bool {
	return !t.made.IsZero() && now.Sub(t.made) < saltLife && !now.Before(t.made)
}

func (t *salt) sum(b []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.Write(t.key[:])
	d.Write(b)
	return d.Sum64()
}

func (t *salt) zero() { *t = salt{} }
