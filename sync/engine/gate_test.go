package engine

import (
	"context"
	"testing"
	"time"
)

// fakeLink drives a gate as transfers over a link would: each window, the
// bytes moved are what the limit allows, up to the link's capacity (in
// transfers at once), with an optional retry storm.
type fakeLink struct {
	g        *gate
	now      time.Time
	retries  int64
	requests int64
}

func newFakeLink(start, lo, hi int) *fakeLink {
	l := &fakeLink{now: time.Unix(0, 0)}
	l.g = newGate(start)
	l.g.now = func() time.Time { return l.now }
	l.g.adapt(start, lo, hi, func() (int64, int64) { return l.retries, l.requests }, nil)
	return l
}

// window fills the gate (a waiter marks it full), then ends enough
// transfers to close one window; capacity bounds the useful transfers.
func (l *fakeLink) window(t *testing.T, capacity int, retried int64) {
	t.Helper()
	limit, _ := l.g.limits()
	for range limit {
		if !l.g.tryAcquire() {
			t.Fatalf("limit %d but no free slot", limit)
		}
	}
	if l.g.tryAcquire() {
		t.Fatal("a slot beyond the limit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = l.g.acquire(ctx) // waits: the limit binds
	l.retries += retried
	l.requests += 100
	l.now = l.now.Add(gateWindow)
	l.g.moved(int64(min(limit, capacity)) << 20) // the bytes the link moved this window
	for range limit {
		l.g.release()
	}
}

func TestGateLearns(t *testing.T) {
	l := newFakeLink(8, 2, 64)
	var seen []int
	for range 6 {
		l.window(t, 40, 0)
		n, _ := l.g.limits()
		seen = append(seen, n)
	}
	// slow start doubles while the bytes rise: 16, 32, 64; at 64 the link
	// (40) no longer rises: the limit holds or steps back, never past max.
	if seen[0] != 16 || seen[1] != 32 || seen[2] != 64 {
		t.Fatalf("limits %v: want slow start 16, 32, 64", seen)
	}
	for _, n := range seen {
		if n > 64 {
			t.Fatalf("limits %v: past the maximum 64", seen)
		}
	}
	// a window with 5 of 100 requests retried cuts by a quarter
	before, _ := l.g.limits()
	l.window(t, 40, 5)
	after, _ := l.g.limits()
	if after != max(2, before*3/4) {
		t.Fatalf("after retries: limit %d, want %d (from %d)", after, before*3/4, before)
	}
	// one retry among 100 requests is noise, not a signal
	l.window(t, 40, 1)
	if n, _ := l.g.limits(); n < after {
		t.Fatalf("one retry in 100 cut the limit from %d to %d", after, n)
	}
	if _, peak := l.g.limits(); peak != 64 {
		t.Fatalf("peak %d, want 64", peak)
	}
}

func TestGateFixed(t *testing.T) {
	g := newGate(3) // --proc 3: a hard cap, never learned
	for range 3 {
		if !g.tryAcquire() {
			t.Fatal("no slot below the cap")
		}
	}
	if g.tryAcquire() {
		t.Fatal("a slot past --proc")
	}
	for range 3 {
		g.moved(1 << 30)
		g.release()
	}
	if n, peak := g.limits(); n != 3 || peak != 3 {
		t.Fatalf("fixed gate moved: %d (peak %d)", n, peak)
	}
}

func TestGateCancelled(t *testing.T) {
	g := newGate(1)
	if err := g.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.acquire(ctx); err == nil {
		t.Fatal("acquire on a full gate returned without a slot and without the context's error")
	}
}
