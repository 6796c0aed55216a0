package client

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Learning a host's rate limit from its 429s (AIMD on the request rate).
// Until a host first refuses a request it is not paced at all. The first
// 429 sets the pace a little below the rate of the answers it gave in the
// last second; each later 429 cuts the pace by paceCut, at most once per
// paceCutEvery (the requests already in flight when the limit was crossed
// are refused too, and count as one signal); each answer that is not a 429
// raises it by paceRise/pace, so the pace climbs by paceRise requests per
// second every second and finds the limit again. Requests are spread evenly
// (a bucket one token deep): a paced restart, not a burst. The refused
// request itself waits what its Retry-After asks (the retry transport does
// that); the rest of the host is paced, not stopped — only a Retry-After
// longer than longPause stops the whole host.
const (
	paceFirst    = 0.9
	paceCut      = 0.85
	paceCutEvery = time.Second
	paceRise     = 15.0 // requests per second, per second
	paceMin      = 1.0  // requests per second
	longPause    = 5 * time.Second
)

// pacer is one host's learned request rate.
type pacer struct {
	mu      sync.Mutex
	limiter *rate.Limiter // nil until the first 429
	pace    float64
	lastCut time.Time
	start   time.Time   // first answer
	recent  []time.Time // answers other than 429 in the last second, before the first 429
}

// wait blocks until the learned pace lets a request go.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	l := p.limiter
	p.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Wait(ctx)
}

// answered notes an answer that was not a 429.
func (p *pacer) answered(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start = now
	}
	if p.limiter == nil {
		p.recent = append(p.recent, now)
		p.prune(now)
		return
	}
	p.pace += paceRise / p.pace
	p.limiter.SetLimitAt(now, rate.Limit(p.pace))
}

func (p *pacer) prune(now time.Time) {
	i := 0
	for i < len(p.recent) && now.Sub(p.recent[i]) > time.Second {
		i++
	}
	p.recent = p.recent[i:]
}

// refused notes a 429 and returns the pace from now on.
func (p *pacer) refused(now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start = now
	}
	if p.limiter == nil {
		p.prune(now)
		window := min(time.Second, max(now.Sub(p.start), 50*time.Millisecond))
		p.pace = max(paceMin, paceFirst*float64(len(p.recent))/window.Seconds())
		p.recent = nil
		p.limiter = rate.NewLimiter(rate.Limit(p.pace), 1)
		p.limiter.ReserveN(now, 1) // the next request waits one interval
		p.lastCut = now
		return p.pace
	}
	if now.Sub(p.lastCut) >= paceCutEvery {
		p.pace = max(paceMin, p.pace*paceCut)
		p.limiter.SetLimitAt(now, rate.Limit(p.pace))
		p.lastCut = now
	}
	return p.pace
}

// current is the learned pace, 0 when the host was never refused.
func (p *pacer) current() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limiter == nil {
		return 0
	}
	return p.pace
}
