package buffer

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/rungdev/rung/schemas"
)

const (
	// chunkLen is how many signals one chunk holds at most.
	chunkLen = 128
	// arenaBytes is the room for strings in one chunk: 256 bytes a signal, a little
	// more than t.js sends.
	arenaBytes = 32 << 10
	// bigAt is the most string bytes of a signal held in an arena: a larger one gets a
	// string of its own, so a chunk is never closed with much of its arena unused.
	bigAt = arenaBytes / 16
)

// chunkBytes is the most memory of one chunk: its slots, its arena and a table of big
// strings.
const chunkBytes = int64(unsafe.Sizeof(chunk{})) + arenaBytes + chunkLen*int64(unsafe.Sizeof(""))

// chunk holds up to chunkLen signals in arrival order, their strings in its arena. Only
// the last chunk of a queue takes pushes; it is closed (and a new one started) when its
// slots or its arena run out.
type chunk struct {
	arena []byte   // the slots' strings; never grows past its capacity, so spans stay valid
	big   []string // by slot: the strings of a signal over bigAt; nil until one comes
	n     int      // slots filled
	waste int64    // charged when the chunk was closed: its unused slots and arena
	slots [chunkLen]slot
}

// chunks keeps the chunks a buffer's queues are done with, for reuse. Unlike a
// sync.Pool it does not let go of them at a garbage collection, to allocate new ones
// right after: a buffer's chunks, in use or kept, are never more than were once in use
// together, which its bound limits.
type chunks struct {
	mu   sync.Mutex
	free []*chunk
}

// get returns a kept chunk, or a new one.
func (p *chunks) get() *chunk {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c
	}
	p.mu.Unlock()
	return &chunk{arena: make([]byte, 0, arenaBytes)}
}

// put keeps cs, which must have been reset, and clears it.
func (p *chunks) put(cs []*chunk) {
	p.mu.Lock()
	p.free = append(p.free, cs...)
	p.mu.Unlock()
	clear(cs)
}

// close charges what the chunk leaves unused, now that nothing more will go in it.
func (c *chunk) close() int64 {
	c.waste = int64(chunkLen-c.n)*slotBytes + int64(cap(c.arena)-len(c.arena))
	if c.big != nil {
		c.waste += chunkLen * int64(unsafe.Sizeof(""))
	}
	return c.waste
}

// reset empties c for reuse. Its slots hold no pointers and need no clearing.
func (c *chunk) reset() {
	c.arena, c.big, c.n, c.waste = c.arena[:0], nil, 0, 0
}

// queue is one shard's signals in arrival order: a list of chunks. Growing never copies
// what is held (a doubling ring copies everything, and under load that copy and its
// write barriers were an eighth of the server's CPU). Not safe for concurrent use: the
// shard's lock guards it.
type queue struct {
	chunks []*chunk // chunks[0] holds the oldest signal, at head; every chunk has unread slots
	head   int
	n      int
	pool   *chunks // shared by a buffer's queues
}

func (q *queue) len() int { return q.n }

// push copies s into the queue with its tag. It returns what it charged beyond s's own
// charge: the unused room of a chunk it closed to make room for s.
func (q *queue) push(s *schemas.Signal, tag uint32) (closed int64) {
	n := s.StringBytes()
	var c *chunk
	if k := len(q.chunks); k > 0 {
		c = q.chunks[k-1]
	}
	if c == nil || c.n == chunkLen || (n <= bigAt && len(c.arena)+n > cap(c.arena)) {
		if c != nil {
			closed = c.close()
		}
		c = q.pool.get()
		q.chunks = append(q.chunks, c)
	}
	sl := &c.slots[c.n]
	sl.tag, sl.big = tag, n > bigAt
	if sl.big {
		if c.big == nil {
			c.big = make([]string, chunkLen)
		}
		b := sl.pack(make([]byte, 0, n), s, n)
		c.big[c.n] = unsafe.String(unsafe.SliceData(b), len(b))
	} else {
		c.arena = sl.pack(c.arena, s, n)
	}
	c.n++
	q.n++
	return closed
}

// taking is what a flusher's takes gather for one batch.
type taking struct {
	batch   []schemas.Signal
	tags    []uint32 // the batch's tags
	done    []*chunk // emptied by the takes: the batch's strings lie in them
	charged int64    // bytes charged for the batch's signals and the chunks in done
}

// take moves up to k of the oldest signals to t; it stops early, at the end of a chunk,
// once t.charged has reached budget. Their strings lie in the chunks' arenas: every
// chunk take empties goes to t.done, to be reset and reused only once the batch is
// delivered.
func (q *queue) take(t *taking, k int, budget int64) {
	for k = min(k, q.n); k > 0 && t.charged < budget; {
		c := q.chunks[0]
		m := min(k, c.n-q.head)
		n := len(t.batch)
		t.batch = slices.Grow(t.batch, m)[:n+m]
		for i := range m {
			sl := &c.slots[q.head+i]
			b := c.arena
			if sl.big {
				b = unsafe.Slice(unsafe.StringData(c.big[q.head+i]), sl.size)
				c.big[q.head+i] = "" // the batch's now: gone with it
			}
			sl.unpack(&t.batch[n+i], b)
			t.tags = append(t.tags, sl.tag)
			t.charged += slotBytes + int64(sl.size)
		}
		q.head += m
		q.n -= m
		k -= m
		if q.head == c.n {
			t.charged += c.waste
			t.done = append(t.done, c)
			copy(q.chunks, q.chunks[1:])
			q.chunks[len(q.chunks)-1] = nil
			q.chunks = q.chunks[:len(q.chunks)-1]
			q.head = 0
		}
	}
}
