package buffer

import (
	"slices"
	"sync"

	"github.com/rungdev/rung/schemas"
)

// chunkLen is how many signals one chunk of a queue holds (about 43 KB).
const chunkLen = 256

type chunk [chunkLen]slot

// queue is one shard's signals in arrival order: a list of fixed-size chunks. Growing
// never copies what is held (a doubling ring copies everything, and under load that
// copy and its write barriers were an eighth of the server's CPU), and a drained chunk
// goes back to a pool shared by the shards. Not safe for concurrent use: the shard's
// lock guards it.
type queue struct {
	chunks []*chunk // chunks[0] holds the oldest signal, at index head
	head   int
	n      int
	pool   *sync.Pool // of *chunk, shared by a buffer's queues
}

func (q *queue) len() int { return q.n }

// push stores s with its tag, s's strings lying in body when they can; it reports
// whether they did (see slot.pack).
func (q *queue) push(body string, s *schemas.Signal, tag uint32) bool {
	tail := q.head + q.n
	if tail/chunkLen == len(q.chunks) {
		q.chunks = append(q.chunks, q.pool.Get().(*chunk))
	}
	q.n++
	x := &q.chunks[tail/chunkLen][tail%chunkLen]
	x.tag = tag
	return x.pack(body, s)
}

// take moves up to k of the oldest signals to dst, and their tags to tags, and returns
// both with the signals' total size; it stops early, at the end of a chunk, once that
// size has reached budget. The slots are cleared so the request bodies they point into
// can be collected.
func (q *queue) take(dst []schemas.Signal, tags []uint32, k int, budget int64) ([]schemas.Signal, []uint32, int64) {
	var size int64
	for k = min(k, q.n); k > 0 && size < budget; {
		c := q.chunks[0]
		m := min(k, chunkLen-q.head)
		n := len(dst)
		dst = slices.Grow(dst, m)[:n+m]
		for i := range m {
			c[q.head+i].unpack(&dst[n+i])
			tags = append(tags, c[q.head+i].tag)
			size += int64(dst[n+i].Size())
		}
		clear(c[q.head : q.head+m])
		q.head += m
		q.n -= m
		k -= m
		if q.head == chunkLen || q.n == 0 {
			q.drop()
		}
	}
	return dst, tags, size
}

// drop retires the head chunk once it is drained (or resets it when it is the last).
func (q *queue) drop() {
	if q.n == 0 && len(q.chunks) == 1 {
		q.head = 0
		return
	}
	c := q.chunks[0]
	copy(q.chunks, q.chunks[1:])
	q.chunks[len(q.chunks)-1] = nil
	q.chunks = q.chunks[:len(q.chunks)-1]
	q.head = 0
	q.pool.Put(c) // cleared by take
}
