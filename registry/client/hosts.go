package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// HostPolicy bounds what one registry host receives.
type HostPolicy struct {
	MaxConns    int     // requests in flight at once per host (0: 32)
	Rate        float64 // requests per second per host (0: unlimited), a token bucket
	PullReserve int     // stop fetching manifests from Docker Hub when its ratelimit-remaining is at most this
	// Hosts overrides MaxConns and Rate (where set) for single hosts
	// ("harbor.example.com", "127.0.0.1:5000", "index.docker.io").
	Hosts map[string]HostPolicy
}

// PullLimitError says Docker Hub's pull quota is (nearly) used up: not
// worth retrying within this run.
type PullLimitError struct {
	Host      string
	Remaining int
	Window    time.Duration
}

func (e *PullLimitError) Error() string {
	w := ""
	if e.Window > 0 {
		w = fmt.Sprintf(" in a %s window", e.Window)
	}
	return fmt.Sprintf("pull limit of %s reached (%d pulls left%s): stopping instead of burning failures; run again when the window resets, or log in (docker login) for a higher limit", e.Host, e.Remaining, w)
}

// hostState is the run's view of one host: how many requests it takes at
// once, the request rate learned from its 429s (see pacer), until when it
// asked us to pause (a long Retry-After), the configured request rate, and
// Docker Hub's quota.
type hostState struct {
	policy HostPolicy
	bucket *rate.Limiter
	pace   pacer

	mu          sync.Mutex
	limit       float64
	inflight    int
	pausedUntil time.Time
	wake        chan struct{} // closed and replaced whenever a waiter may proceed
	remaining   int           // ratelimit-remaining, -1 unknown
	quotaLimit  int           // ratelimit-limit, -1 unknown
	window      time.Duration
}

type hostTable struct {
	policy HostPolicy
	mu     sync.Mutex
	hosts  map[string]*hostState
}

func (t *hostTable) get(host string) *hostState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.hosts[host]; ok {
		return h
	}
	p := t.policy
	if o, ok := p.Hosts[strings.ToLower(host)]; ok {
		if o.MaxConns > 0 {
			p.MaxConns = o.MaxConns
		}
		if o.Rate > 0 {
			p.Rate = o.Rate
		}
	}
	p.Hosts = nil
	conns := p.MaxConns
	if conns <= 0 {
		conns = 32
	}
	h := &hostState{policy: p, limit: float64(conns), wake: make(chan struct{}), remaining: -1, quotaLimit: -1}
	h.policy.MaxConns = conns
	if p.Rate > 0 {
		h.bucket = rate.NewLimiter(rate.Limit(p.Rate), max(1, int(p.Rate)))
	}
	if t.hosts == nil {
		t.hosts = map[string]*hostState{}
	}
	t.hosts[host] = h
	return h
}

// acquire waits for a slot (and the rate bucket, and any pause the host
// asked for).
func (h *hostState) acquire(ctx context.Context) error {
	if h.bucket != nil {
		if err := h.bucket.Wait(ctx); err != nil {
			return err
		}
	}
	if err := h.pace.wait(ctx); err != nil {
		return err
	}
	for {
		h.mu.Lock()
		now := time.Now()
		if h.inflight < max(1, int(h.limit)) && !now.Before(h.pausedUntil) {
			h.inflight++
			h.mu.Unlock()
			return nil
		}
		wake, until := h.wake, h.pausedUntil
		h.mu.Unlock()
		var timer <-chan time.Time
		if now.Before(until) {
			t := time.NewTimer(until.Sub(now))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer:
		}
	}
}

// release frees the slot and adapts to the answer.
func (h *hostState) release(resp *http.Response, pause time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	if resp != nil {
		now := time.Now()
		if resp.StatusCode == http.StatusTooManyRequests {
			// The refused request waits its Retry-After; the host is
			// paced (see pacer), and stopped only for a long pause.
			h.pace.refused(now)
			if until := now.Add(pause); pause > longPause && until.After(h.pausedUntil) {
				h.pausedUntil = until
			}
		} else {
			h.pace.answered(now)
		}
		h.readQuota(resp.Header)
	}
	close(h.wake)
	h.wake = make(chan struct{})
}

// readQuota reads Docker Hub's "ratelimit-remaining: 76;w=21600".
func (h *hostState) readQuota(hdr http.Header) {
	v := hdr.Get("Ratelimit-Remaining")
	if v == "" {
		return
	}
	n, rest, _ := strings.Cut(v, ";")
	remaining, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil {
		return
	}
	h.remaining = remaining
	if w, ok := strings.CutPrefix(strings.TrimSpace(rest), "w="); ok {
		if secs, err := strconv.Atoi(w); err == nil {
			h.window = time.Duration(secs) * time.Second
		}
	}
}

// quotaExhausted reports whether a request that counts against Docker Hub's
// pull quota (a manifest GET) must not be sent.
func (h *hostState) quotaExhausted(host string, req *http.Request) error {
	if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/manifests/") {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.remaining >= 0 && h.remaining <= h.policy.PullReserve {
		return Permanent(&PullLimitError{Host: host, Remaining: h.remaining, Window: h.window})
	}
	return nil
}

// idleConn fails a read or write that makes no progress for timeout: any
// traffic in either direction extends both deadlines, so a long upload or
// download never times out while it moves.
type idleConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

func idleDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || timeout <= 0 {
			return c, err
		}
		return &idleConn{Conn: c, timeout: timeout}, nil
	}
}
