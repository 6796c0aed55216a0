package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagesync/imagesync/internal/fifo"
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
	Reserve   int // --hub-reserve: pulls kept for people
	Window    time.Duration
	// ResetBy is when the pulls counted now have all left the rolling
	// window at the latest (the last answer's time + Window); zero unknown.
	ResetBy time.Time
}

func (e *PullLimitError) Error() string {
	w := ""
	if e.Window > 0 {
		w = fmt.Sprintf(" in a %s window", e.Window)
	}
	reset := "run again when the window resets"
	if !e.ResetBy.IsZero() {
		reset = "the window resets by " + e.ResetBy.UTC().Format("2006-01-02 15:04 UTC") + " at the latest: run again then"
	}
	pulls := "pulls"
	if e.Remaining == 1 {
		pulls = "pull"
	}
	return fmt.Sprintf("pull limit of %s reached (%d %s left%s, %d kept in reserve): stopping instead of burning failures; %s, or log in (docker login) for a higher limit", e.Host, e.Remaining, pulls, w, e.Reserve, reset)
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
	// waiters wait for a slot, first come first served. Waking them all
	// on each release, as this once did, made W1 wake ~20,000 goroutines
	// for 1,500 requests.
	waiters    fifo.Waiters
	remaining  int // ratelimit-remaining, -1 unknown
	quotaLimit int // ratelimit-limit, -1 unknown
	window     time.Duration
	quotaAt    time.Time // when remaining was last read
	pulling    int       // manifest GETs in flight (not yet in remaining)
	reserved   int       // pulls set aside by ReservePulls, not spent yet
	pulls      int64     // manifest GETs sent
}

// defaultMaxConns bounds a host's requests in flight without --max-conns.
const defaultMaxConns = 32

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
		conns = defaultMaxConns
	}
	h := &hostState{policy: p, limit: float64(conns), remaining: -1, quotaLimit: -1}
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
	h.mu.Lock()
	if h.waiters.Len() == 0 && h.free() {
		h.inflight++
		h.mu.Unlock()
		return nil
	}
	return h.waiters.Wait(ctx, &h.mu, func() { h.inflight--; h.grant() })
}

// free reports whether a slot may be handed out now (h.mu held).
func (h *hostState) free() bool {
	return h.inflight < max(1, int(h.limit)) && !time.Now().Before(h.pausedUntil)
}

// grant hands free slots to the first waiters (h.mu held).
func (h *hostState) grant() {
	for h.waiters.Len() > 0 && h.free() {
		h.inflight++
		h.waiters.Grant()
	}
}

// pauseUntil stops handing out slots until then (h.mu held); the waiters
// get them when it ends.
func (h *hostState) pauseUntil(until time.Time) {
	if !until.After(h.pausedUntil) {
		return
	}
	h.pausedUntil = until
	time.AfterFunc(time.Until(until), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.grant()
	})
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
			if pause > longPause {
				h.pauseUntil(now.Add(pause))
			}
		} else {
			h.pace.answered(now)
		}
		h.readQuota(resp.Header)
	}
	h.grant()
}

// Bounds of Docker Hub's quota headers: anything outside is not believed.
const (
	maxQuota       = 1_000_000
	maxQuotaWindow = 7 * 24 * time.Hour
	maxQuotaHeader = 64
	// quotaReorder is how long a lower ratelimit-remaining wins over a
	// higher one that arrives after it.
	quotaReorder = time.Second
)

// parseQuota reads one of Docker Hub's quota headers, "76;w=21600": a
// count and optionally the window in seconds. ok is false for anything
// else (too long, not a number, negative, past the bounds).
func parseQuota(v string) (n int, window time.Duration, ok bool) {
	if v == "" || len(v) > maxQuotaHeader {
		return 0, 0, false
	}
	num, rest, _ := strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n > maxQuota {
		return 0, 0, false
	}
	for _, p := range strings.Split(rest, ";") {
		if w, found := strings.CutPrefix(strings.TrimSpace(p), "w="); found {
			secs, err := strconv.Atoi(w)
			if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxQuotaWindow {
				return 0, 0, false
			}
			window = time.Duration(secs) * time.Second
		}
	}
	return n, window, true
}

// readQuota reads Docker Hub's ratelimit-remaining and ratelimit-limit
// ("76;w=21600"); invalid values are ignored. Called with h.mu held.
func (h *hostState) readQuota(hdr http.Header) {
	if n, w, ok := parseQuota(hdr.Get("Ratelimit-Remaining")); ok {
		now := time.Now()
		// Answers to parallel GETs arrive in any order: a higher count
		// within a second is an older answer, not pulls given back.
		if h.remaining >= 0 && n > h.remaining && now.Sub(h.quotaAt) < quotaReorder {
			n = h.remaining
		}
		h.remaining, h.quotaAt = n, now
		if w > 0 {
			h.window = w
		}
	}
	if n, w, ok := parseQuota(hdr.Get("Ratelimit-Limit")); ok {
		h.quotaLimit = n
		if w > 0 && h.window == 0 {
			h.window = w
		}
	}
}

// isPull reports whether a request counts against Docker Hub's pull quota:
// a manifest GET (HEADs do not).
func isPull(req *http.Request) bool {
	return req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/")
}

// limitError is the PullLimitError of this host now. Called with h.mu held.
func (h *hostState) limitError(host string) error {
	e := &PullLimitError{Host: host, Remaining: h.remaining, Reserve: h.policy.PullReserve, Window: h.window}
	if h.window > 0 && !h.quotaAt.IsZero() {
		e.ResetBy = h.quotaAt.Add(h.window)
	}
	return Permanent(e)
}

// quotaExhausted reports whether a request that counts against Docker Hub's
// pull quota (a manifest GET) must not be sent.
func (h *hostState) quotaExhausted(host string, req *http.Request) error {
	if !isPull(req) {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.remaining >= 0 && h.remaining <= h.policy.PullReserve {
		return h.limitError(host)
	}
	return nil
}

// takePull admits a manifest GET: refused when the pulls left, less those
// in flight and those reserved (ReservePulls), are down to the reserve (so
// that parallel GETs cannot overshoot it); a GET made under a reservation
// of this host spends it instead. Admitted ones must be given back with
// endPull. ok is false for a request that is not a pull.
func (h *hostState) takePull(host string, req *http.Request) (ok bool, err error) {
	if !isPull(req) {
		return false, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if res, _ := req.Context().Value(reservationKey{}).(*pullReservation); res != nil && res.h == h && res.left > 0 {
		res.left--
		h.reserved--
	} else if h.remaining >= 0 && h.remaining-h.pulling-h.reserved <= h.policy.PullReserve {
		return false, h.limitError(host)
	}
	h.pulling++
	h.pulls++
	return true, nil
}

// endPull gives back what takePull took, once the answer (and its quota
// headers) arrived.
func (h *hostState) endPull() {
	h.mu.Lock()
	h.pulling--
	h.mu.Unlock()
}

// pullReservation is pulls set aside for one image's manifests.
type pullReservation struct {
	h    *hostState
	left int // guarded by h.mu
}

type reservationKey struct{}

// reservePulls sets n pulls aside, or returns a PullLimitError when they
// would eat into the reserve (a quota is known and too low). The returned
// release gives back what was not spent.
func (h *hostState) reservePulls(ctx context.Context, host string, n int) (context.Context, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.remaining < 0 || n <= 0 {
		return ctx, func() {}, nil // no quota known: nothing to set aside
	}
	if h.remaining-h.pulling-h.reserved-n < h.policy.PullReserve {
		return ctx, func() {}, h.limitError(host)
	}
	res := &pullReservation{h: h, left: n}
	h.reserved += n
	release := func() {
		h.mu.Lock()
		h.reserved -= res.left
		res.left = 0
		h.mu.Unlock()
	}
	return context.WithValue(ctx, reservationKey{}, res), release, nil
}

// idleConn fails a read or write that makes no progress for timeout: any
// traffic in either direction extends both deadlines, so a long upload or
// download never times out while it moves.
//
// The deadlines are pushed at most every timeout/16 (a read or write then
// fails after 15/16 of timeout without progress at the earliest): setting
// both on each of the tens of thousands of reads and writes of a sync
// moved two runtime timers each time.
type idleConn struct {
	net.Conn
	timeout time.Duration
	pushed  atomic.Int64 // when the deadlines were last pushed, ns since connStart
}

var connStart = time.Now() // a monotonic origin for idleConn.pushed

func (c *idleConn) touch() {
	now := int64(time.Since(connStart))
	if last := c.pushed.Load(); now-last < int64(c.timeout/16) && last != 0 {
		return
	}
	c.pushed.Store(now)
	_ = c.Conn.SetDeadline(connStart.Add(time.Duration(now) + c.timeout))
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.touch()
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.touch()
	return c.Conn.Write(p)
}

// ReadFrom sends a request body (net/http hands it over whole, after the
// headers) in writes of up to copyChunk, read with the same buffer: a
// source body's bufio.Reader passes a read that large straight to its
// connection, so the bytes are copied once (io.Copy's 32 KiB pieces made
// twice the system calls), and the transport's own buffers stay small.
func (c *idleConn) ReadFrom(r io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(writeOnly{c}, r, *buf)
}

// copyChunk is the size of the writes of a request body (see ReadFrom).
const copyChunk = 128 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }}

// writeOnly hides a writer's ReadFrom from io.CopyBuffer.
type writeOnly struct{ io.Writer }

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
