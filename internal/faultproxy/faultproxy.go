// Package faultproxy is a seeded, fault-injecting HTTP reverse proxy for
// tests and benchmarks. Put it in front of a registry (for example a
// registrytest server) and it answers a chosen fraction of requests with 429
// or 5xx, closes connections in the middle of a response or of a request
// body, or delays the first response byte; everything else is forwarded
// unchanged and streamed.
//
// Decisions are deterministic for a given seed and order of requests: every
// candidate request (one that Plan.Only accepts and Plan.Exempt does not)
// draws exactly two numbers from a mutex-protected math/rand/v2 PCG source
// seeded with Plan.Seed, in the order the requests reach the proxy. Requests
// that are not candidates draw nothing, so they do not shift the sequence.
//
// Only plain HTTP is supported, on both sides.
//
// Scripted (and ScriptedTLS) is the other tool here: a front whose script
// decides every answer — forwarded, rewritten (Capture) or made up — for
// the lies of a hostile registry that random faults cannot tell.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Fault names used in [Entry].Fault.
const (
	FaultNone          = ""
	FaultTooMany       = "429"
	FaultServerError   = "5xx"
	FaultResetResponse = "reset-response"
	FaultResetRequest  = "reset-request"
	FaultSlow          = "slow"
	FaultLimited       = "limited" // refused by the token bucket (Plan.Limit)
)

// Plan says which faults to inject. The four rates are fractions of the
// candidate requests; each must be in [0, 1] and together they must not
// exceed 1 (a request gets at most one fault). The zero Plan forwards
// everything.
type Plan struct {
	Seed int64
	// Rate429 is the fraction answered 429 Too Many Requests without
	// contacting the target: half of them with "Retry-After: 1", half
	// without, unless RetryAfter is set.
	Rate429 float64
	// RetryAfter, if non-empty, is the Retry-After value of every 429.
	RetryAfter string
	// Rate5xx is the fraction answered 500, 502 or 503 (uniformly) without
	// contacting the target.
	Rate5xx float64
	// RateReset is the fraction whose connection is closed abruptly: half
	// mid-response (the request is forwarded; the client gets the headers
	// and part of the body, then the connection closes), half mid-request
	// (part of the request body is read, then the connection is reset and
	// the target never sees the request).
	RateReset float64
	// SlowFirstByte is the delay before a slow request is forwarded (so
	// before the first response byte), for a fraction RateSlow.
	SlowFirstByte time.Duration
	RateSlow      float64
	// Limit, if positive, puts a token bucket of Limit requests per second
	// (LimitBurst tokens deep; default Limit/10, at least 1) in front of
	// the candidate requests, as a registry's rate limiter does: a request
	// that finds the bucket empty is answered 429 with "Retry-After:
	// LimitRetryAfter" (default "1") without contacting the target, and
	// draws no random numbers. The other faults apply to the requests the
	// bucket lets through.
	Limit           float64
	LimitBurst      int
	LimitRetryAfter string
	// Status5xx, if set, is the status of every injected server error
	// instead of a uniform choice of 500, 502 and 503.
	Status5xx int
	// RTT, if positive, is a network's round trip: every request (candidate
	// or not) is held this long before it is forwarded, and every new
	// connection this long before its first request is read (its TCP
	// handshake). It models a far registry, not a fault: it draws nothing.
	RTT time.Duration
	// Bandwidth, if positive, shapes the bodies that cross the proxy to
	// this many bytes per second in each direction (request bodies share
	// one bucket, response bodies another), as one link would.
	Bandwidth int64
	// Only, if set, limits faults to the requests it returns true for.
	Only func(r *http.Request) bool
	// Exempt requests are never faulted (e.g. a token endpoint).
	Exempt func(r *http.Request) bool
}

func (p Plan) validate() error {
	sum := 0.0
	for _, r := range []struct {
		name string
		v    float64
	}{{"Rate429", p.Rate429}, {"Rate5xx", p.Rate5xx}, {"RateReset", p.RateReset}, {"RateSlow", p.RateSlow}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("faultproxy: %s = %v, want a fraction in [0, 1]", r.name, r.v)
		}
		sum += r.v
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("faultproxy: the rates add up to %v, more than 1", sum)
	}
	if math.IsNaN(p.Limit) || p.Limit < 0 || p.LimitBurst < 0 {
		return fmt.Errorf("faultproxy: Limit %v, LimitBurst %d: want non-negative", p.Limit, p.LimitBurst)
	}
	if p.Status5xx != 0 && (p.Status5xx < 500 || p.Status5xx > 599) {
		return fmt.Errorf("faultproxy: Status5xx %d is not a 5xx status", p.Status5xx)
	}
	if strings.ContainsAny(p.LimitRetryAfter, "\r\n") {
		return errors.New("faultproxy: LimitRetryAfter contains a line break")
	}
	if p.SlowFirstByte < 0 || p.RTT < 0 || p.Bandwidth < 0 {
		return fmt.Errorf("faultproxy: SlowFirstByte %v, RTT %v, Bandwidth %d: want non-negative", p.SlowFirstByte, p.RTT, p.Bandwidth)
	}
	if strings.ContainsAny(p.RetryAfter, "\r\n") {
		return errors.New("faultproxy: RetryAfter contains a line break")
	}
	return nil
}

// Counts are the number of requests seen, forwarded untouched (Passed), and
// faulted per kind. Requests == Passed + TooMany + ServerErrors +
// ResetsResponse + ResetsRequest + Slow + Limited (a slow request is
// forwarded after its delay and counted as Slow only; Limited are the
// requests the token bucket refused).
type Counts struct {
	Requests, Passed, TooMany, ServerErrors, ResetsResponse, ResetsRequest, Slow, Limited int
}

// Entry is one request seen by the proxy, in the order of decisions.
type Entry struct {
	Method, Path, RawQuery string
	Fault                  string // one of the Fault* constants
	// Status is the status sent to the client (for reset-response, the one
	// whose response was cut), 0 for reset-request or when none was sent.
	Status int
}

// Timed is an entry on a time axis: Start is when the request reached the
// proxy (before Plan.RTT's hold), Done when the proxy finished answering it
// (zero while in flight) — a client's view of its requests.
type Timed struct {
	Entry
	Start, Done time.Time
}

func (e Entry) String() string {
	q := ""
	if e.RawQuery != "" {
		q = "?" + e.RawQuery
	}
	f := ""
	if e.Fault != "" {
		f = " [" + e.Fault + "]"
	}
	return fmt.Sprintf("%s %s%s -> %d%s", e.Method, e.Path, q, e.Status, f)
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// Host is "127.0.0.1:PORT", where the proxy listens.
	Host string

	target *url.URL
	rp     *httputil.ReverseProxy
	tr     *http.Transport
	srv    *http.Server
	served chan struct{}

	mu       sync.Mutex
	plan     Plan
	rng      *rand.Rand
	limiter  *rate.Limiter // nil without Plan.Limit
	up, down *rate.Limiter // Plan.Bandwidth's buckets (request, response bodies); nil without it
	counts   Counts
	log      []Entry
	times    [][2]time.Time // log's start and done

	// Handlers in flight, for Close to wait for.
	inflight int
	closed   bool
	idle     chan struct{} // closed when inflight drops to 0 after Close

	closeOnce sync.Once
}

// Start starts a proxy in front of target ("http://127.0.0.1:PORT" or
// "127.0.0.1:PORT") and closes it in t.Cleanup. An invalid plan or target
// fails the test.
func Start(t testing.TB, target string, plan Plan) *Proxy {
	t.Helper()
	p, err := New(target, plan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// New starts a proxy in front of target ("http://127.0.0.1:PORT" or
// "127.0.0.1:PORT") listening on 127.0.0.1:0. Call Close when done.
func New(target string, plan Plan) (*Proxy, error) {
	if err := plan.validate(); err != nil {
		return nil, err
	}
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %v", target, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want http://HOST:PORT", target)
	}
	u = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}

	p := &Proxy{target: u, plan: plan, rng: newRand(plan.Seed), limiter: newLimiter(plan), served: make(chan struct{})}
	p.up, p.down = newShaper(plan), newShaper(plan)
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.tr.Proxy = nil
	p.tr.DisableCompression = true // never alter bodies or Content-Encoding
	p.tr.MaxIdleConnsPerHost = 64
	quiet := log.New(io.Discard, "", 0)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Keep the client's Host so URLs the target builds (Location
			// headers) point back at the proxy.
			pr.Out.Host = pr.In.Host
			// Rewrite strips X-Forwarded-*; pass the client's through.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:     p.tr,
		FlushInterval: -1,
		ErrorLog:      quiet,
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %v", err)
	}
	p.Host = ln.Addr().String()
	ln = &farListener{Listener: ln, rtt: func() time.Duration { p.mu.Lock(); defer p.mu.Unlock(); return p.plan.RTT }}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ErrorLog: quiet, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

func newLimiter(p Plan) *rate.Limiter {
	if p.Limit <= 0 {
		return nil
	}
	burst := p.LimitBurst
	if burst == 0 {
		burst = max(1, int(p.Limit/10))
	}
	return rate.NewLimiter(rate.Limit(p.Limit), burst)
}

func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
}

// Close stops the proxy: it closes the listener and all connections and
// waits (up to 10s) for requests in flight to end. It is idempotent.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		_ = p.srv.Close()
		<-p.served
		p.mu.Lock()
		p.closed = true
		idle := make(chan struct{})
		if p.inflight == 0 {
			close(idle)
		}
		p.idle = idle
		p.mu.Unlock()
		select {
		case <-idle:
		case <-time.After(10 * time.Second):
		}
		p.tr.CloseIdleConnections()
	})
}

// URL returns "http://" + Host + path.
func (p *Proxy) URL(path string) string { return "http://" + p.Host + path }

// SetPlan replaces the plan for the requests that arrive from now on. The
// random sequence goes on, unless plan.Seed differs from the current seed:
// then the source is reseeded. It panics on an invalid plan. Safe for
// concurrent use.
func (p *Proxy) SetPlan(plan Plan) {
	if err := plan.validate(); err != nil {
		panic(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if plan.Seed != p.plan.Seed {
		p.rng = newRand(plan.Seed)
	}
	if plan.Limit != p.plan.Limit || plan.LimitBurst != p.plan.LimitBurst {
		p.limiter = newLimiter(plan)
	}
	if plan.Bandwidth != p.plan.Bandwidth {
		p.up, p.down = newShaper(plan), newShaper(plan)
	}
	p.plan = plan
}

// Counts returns the counters so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Log returns a copy of the entries so far, in the order of decisions.
func (p *Proxy) Log() []Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Entry(nil), p.log...)
}

// decision is what happens to one request.
type decision struct {
	fault      string
	status     int    // 429 or 5xx code
	retryAfter string // for 429
	delay      time.Duration
	index      int // in p.log
}

func (p *Proxy) decide(r *http.Request, start time.Time) decision {
	p.mu.Lock()
	plan := p.plan
	p.mu.Unlock()
	// The predicates run outside the lock; a concurrent SetPlan may make
	// them stale by one request, which is harmless.
	candidate := (plan.Only == nil || plan.Only(r)) && (plan.Exempt == nil || !plan.Exempt(r))

	p.mu.Lock()
	defer p.mu.Unlock()
	plan = p.plan
	d := decision{}
	if candidate && p.limiter != nil && !p.limiter.Allow() {
		d.fault, d.status, d.retryAfter = FaultLimited, http.StatusTooManyRequests, plan.LimitRetryAfter
		if d.retryAfter == "" {
			d.retryAfter = "1"
		}
	} else if candidate {
		u, v := p.rng.Float64(), p.rng.Uint64()
		switch {
		case u < plan.Rate429:
			d.fault, d.status = FaultTooMany, http.StatusTooManyRequests
			switch {
			case plan.RetryAfter != "":
				d.retryAfter = plan.RetryAfter
			case v%2 == 0:
				d.retryAfter = "1"
			}
		case u < plan.Rate429+plan.Rate5xx:
			d.fault = FaultServerError
			d.status = [...]int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[v%3]
			if plan.Status5xx != 0 {
				d.status = plan.Status5xx
			}
		case u < plan.Rate429+plan.Rate5xx+plan.RateReset:
			d.fault = FaultResetResponse
			if v%2 == 1 {
				d.fault = FaultResetRequest
			}
		case u < plan.Rate429+plan.Rate5xx+plan.RateReset+plan.RateSlow:
			d.fault, d.delay = FaultSlow, plan.SlowFirstByte
		}
	}
	p.counts.Requests++
	switch d.fault {
	case FaultNone:
		p.counts.Passed++
	case FaultTooMany:
		p.counts.TooMany++
	case FaultServerError:
		p.counts.ServerErrors++
	case FaultResetResponse:
		p.counts.ResetsResponse++
	case FaultResetRequest:
		p.counts.ResetsRequest++
	case FaultSlow:
		p.counts.Slow++
	case FaultLimited:
		p.counts.Limited++
	}
	d.index = len(p.log)
	p.log = append(p.log, Entry{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Fault: d.fault, Status: d.status})
	p.times = append(p.times, [2]time.Time{start})
	return d
}

func (p *Proxy) done(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.times[i][1] = time.Now()
}

// Timeline returns the entries so far with their times, in the order of
// decisions.
func (p *Proxy) Timeline() []Timed {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Timed, len(p.log))
	for i, e := range p.log {
		out[i] = Timed{Entry: e, Start: p.times[i][0], Done: p.times[i][1]}
	}
	return out
}

func (p *Proxy) setStatus(i, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log[i].Status = code
}

func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inflight++
	return true
}

func (p *Proxy) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	if p.inflight == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		panic(http.ErrAbortHandler) // closed: drop the connection
	}
	defer p.leave()
	start := time.Now()
	p.mu.Lock()
	rtt, up, down := p.plan.RTT, p.up, p.down
	p.mu.Unlock()
	if !sleep(r.Context(), rtt) {
		return
	}
	if up != nil && r.Body != nil && r.Body != http.NoBody {
		r.Body = &shapedBody{ReadCloser: r.Body, l: up, ctx: r.Context()}
	}
	if down != nil {
		w = &shapedWriter{ResponseWriter: w, l: down, ctx: r.Context()}
	}
	d := p.decide(r, start)
	defer p.done(d.index)
	switch d.fault {
	case FaultTooMany, FaultServerError, FaultLimited:
		// Read the request body first so that the client, still sending
		// it, reliably gets the answer instead of a reset.
		_, _ = io.Copy(io.Discard, r.Body)
		code := "UNAVAILABLE"
		if d.status == http.StatusTooManyRequests {
			code = "TOOMANYREQUESTS"
			if d.retryAfter != "" {
				w.Header().Set("Retry-After", d.retryAfter)
			}
		}
		body := fmt.Sprintf(`{"errors":[{"code":%q,"message":"faultproxy: injected %d"}]}`+"\n", code, d.status)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(d.status)
		_, _ = io.WriteString(w, body)
	case FaultResetRequest:
		resetRequest(w, r)
	case FaultResetResponse:
		cw := &cuttingWriter{ResponseWriter: w, req: r, status: func(c int) { p.setStatus(d.index, c) }}
		p.rp.ServeHTTP(cw, r)
		cw.abort() // the response ended before its cut point
	default:
		if !sleep(r.Context(), d.delay) {
			return
		}
		rw := &statusWriter{ResponseWriter: w, status: func(c int) { p.setStatus(d.index, c) }}
		p.rp.ServeHTTP(rw, r)
		if !rw.wrote {
			p.setStatus(d.index, http.StatusOK)
		}
	}
}

// resetRequest reads part of the request body (half of a known length, up
// to 32 KiB of an unknown one, nothing without a body), then resets the
// connection without answering.
func resetRequest(w http.ResponseWriter, r *http.Request) {
	var n int64
	switch {
	case r.ContentLength > 0:
		n = max(r.ContentLength/2, 1)
	case r.ContentLength < 0:
		n = 32 << 10
	}
	if n > 0 {
		_, _ = io.CopyN(io.Discard, r.Body, n)
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	_ = conn.Close()
}

// statusWriter reports the final status written.
type statusWriter struct {
	http.ResponseWriter
	status func(int)
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		w.status(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cuttingWriter forwards the status line, the headers and part of the body,
// then aborts the connection:
//
//   - a response with a body: after the headers and half of its bytes (half
//     of Content-Length, or half of the first write when the length is not
//     known) it flushes and panics with http.ErrAbortHandler, so the server
//     closes the connection and the client sees a truncated body
//     (io.ErrUnexpectedEOF);
//   - a response without a body (HEAD, 204, 304, Content-Length: 0): it
//     hijacks the connection, writes the first half of the raw status line
//     and headers, and closes it, so the client sees a truncated header.
type cuttingWriter struct {
	http.ResponseWriter
	req     *http.Request
	status  func(int)
	wrote   bool
	cut     int64 // body bytes to let through; -1 until known
	written int64
}

func (w *cuttingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *cuttingWriter) WriteHeader(code int) {
	if w.wrote || code < 200 {
		w.ResponseWriter.WriteHeader(code) // 1xx, or a misuse net/http reports
		return
	}
	w.wrote = true
	w.status(code)
	h := w.Header()
	cl := int64(-1)
	if s := h.Get("Content-Length"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	if w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || cl == 0 {
		w.cutHeader(code)
		return
	}
	w.cut = -1
	if cl > 0 {
		w.cut = cl / 2
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cuttingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if len(b) == 0 {
		return 0, nil
	}
	if w.cut < 0 {
		w.cut = w.written + int64(len(b))/2
	}
	if rest := w.cut - w.written; int64(len(b)) > rest {
		if rest > 0 {
			_, _ = w.ResponseWriter.Write(b[:rest])
		}
		w.abort()
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// abort flushes what was written and ends the handler with
// http.ErrAbortHandler: the server then closes the connection without
// finishing the response.
func (w *cuttingWriter) abort() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}

// cutHeader sends half of the raw response head on a hijacked connection
// and closes it.
func (w *cuttingWriter) cutHeader(code int) {
	conn, _, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", code, http.StatusText(code))
	_ = w.Header().Write(&b)
	b.WriteString("\r\n")
	head := b.String()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, head[:len(head)/2])
	_ = conn.Close()
	panic(http.ErrAbortHandler)
}
