package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/imagesync/imagesync/internal/fifo"
)

// gate bounds the blob transfers in flight. Its limit is fixed (--proc
// given: the user's hard cap) or learned, the way the client's pacer learns
// a host's rate: across a link with a long round trip a transfer spends most
// of its time waiting, so more of them at once move more bytes, up to what
// the link or the registries take. While the gate is full and each window's
// throughput rises (≥ 5%) the limit grows: it doubles at first (slow
// start, as TCP's), then grows by a quarter once a window did not rise;
// when throughput falls (≤ 80%) the limit steps back by an eighth; a window
// in which 2% of the requests were retried (429s, 5xx, resets: the client's
// retry count rose) cuts it by a quarter. The limit stays within [min, max]
// (max: --max-conns, which also bounds each host's requests).
type gate struct {
	mu       sync.Mutex
	limit    int
	min, max int
	adaptive bool
	inflight int
	waiters  fifo.Waiters

	// learning (adaptive only)
	now        func() time.Time
	strain     func() (retries, requests int64) // the client's so far; nil: none seen
	start      time.Time                        // of the window
	bytes      int64                            // moved in the window
	done       int                              // transfers ended in the window
	full       bool                             // someone waited in the window: the limit bound
	lastRate   float64                          // bytes per second of the previous window
	lastStrain [2]int64                         // retries, requests at the previous window's end
	settled    bool                             // out of slow start (see learn)
	peak       int
	log        *slog.Logger
}

// gateWindow is the shortest learning window.
const gateWindow = 500 * time.Millisecond

func newGate(limit int) *gate {
	limit = max(limit, 1)
	return &gate{limit: limit, min: limit, max: limit, peak: limit, now: time.Now}
}

// adapt makes the limit learned, starting at start, within [lo, hi]; strain
// reports the client's retries and requests so far.
func (g *gate) adapt(start, lo, hi int, strain func() (int64, int64), log *slog.Logger) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.min, g.max = max(1, lo), max(1, lo, hi)
	g.limit = min(max(start, g.min), g.max)
	g.peak = g.limit
	g.adaptive, g.strain, g.log = true, strain, log
	if strain != nil {
		g.lastStrain[0], g.lastStrain[1] = strain()
	}
}

// acquire waits for a slot. Waiters are served in turn, one per free slot
// (a release wakes one, not all: hundreds of blobs may be waiting).
func (g *gate) acquire(ctx context.Context) error {
	g.mu.Lock()
	if g.inflight < g.limit && g.waiters.Len() == 0 {
		g.take()
		g.mu.Unlock()
		return nil
	}
	g.full = true
	return g.waiters.Wait(ctx, &g.mu, func() { g.inflight--; g.handOff() })
}

// take counts a slot taken; g.mu held.
func (g *gate) take() {
	g.inflight++
	if g.start.IsZero() {
		g.start = g.now()
	}
}

// handOff gives free slots to the first waiters; g.mu held.
func (g *gate) handOff() {
	for g.inflight < g.limit && g.waiters.Len() > 0 {
		g.take()
		g.waiters.Grant()
	}
}

// tryAcquire takes a slot if one is free at once (and nobody waits).
func (g *gate) tryAcquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight >= g.limit || g.waiters.Len() > 0 {
		return false
	}
	g.take()
	return true
}

// release frees a slot.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.adaptive {
		g.done++
		g.learn()
	}
	g.handOff()
}

// moved counts n bytes read by a transfer: the gate learns from the bytes
// as they move, not only when a transfer ends (a few large blobs end late).
func (g *gate) moved(n int64) {
	if !g.adaptive { // set before the first transfer, never changed after
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bytes += n
	g.learn()
	g.handOff()
}

// learn closes a window once it is long enough and moves the limit.
func (g *gate) learn() {
	now := g.now()
	elapsed := now.Sub(g.start)
	if elapsed < gateWindow || g.bytes == 0 {
		return
	}
	rate := float64(g.bytes) / elapsed.Seconds()
	old := g.limit
	var strain [2]int64
	if g.strain != nil {
		strain[0], strain[1] = g.strain()
	}
	retried, sent := strain[0]-g.lastStrain[0], strain[1]-g.lastStrain[1]
	switch {
	case retried >= 2 && retried*50 >= sent: // 2% of the window's requests retried
		g.limit = max(g.min, g.limit*3/4)
	case !g.full:
		// the limit did not bind: nothing learnt about more
	case g.lastRate == 0 || rate >= g.lastRate*1.05:
		step := max(1, g.limit/4)
		if !g.settled {
			step = g.limit // slow start: double until the bytes stop rising
		}
		g.limit = min(g.max, g.limit+step)
	case rate <= g.lastRate*0.8:
		g.limit = max(g.min, g.limit-max(1, g.limit/8))
		g.settled = true
	default:
		g.settled = true
	}
	if retried >= 2 && retried*50 >= sent {
		g.settled = true
	}
	g.lastStrain, g.lastRate = strain, rate
	g.start, g.bytes, g.done, g.full = now, 0, 0, false
	g.peak = max(g.peak, g.limit)
	if g.limit != old && g.log != nil {
		g.log.Debug("blob transfers at once", "limit", g.limit, "was", old, "throughput MB/s", int(rate/1e6), "retried", retried, "of requests", sent)
	}
}

// limits reports the current and the highest limit of the run.
func (g *gate) limits() (now, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit, g.peak
}
