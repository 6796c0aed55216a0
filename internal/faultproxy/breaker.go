package faultproxy

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Breaker is a plain-HTTP reverse proxy that counts the request body bytes
// it forwards to its target (what a destination registry receives) and,
// when armed, breaks the connection of the request in flight at a chosen
// count: midway (the target gets part of the body, then the connection
// closes, as when a network path breaks) or before a request's body is
// forwarded at all. Watch runs a function when the count crosses a mark
// (to kill the client there).
type Breaker struct {
	// Host is "127.0.0.1:PORT" where the breaker listens.
	Host string

	forwarded atomic.Int64
	mu        sync.Mutex
	cutAt     int64 // 0: not armed
	before    bool
	cuts      int
	watches   []watch
}

type watch struct {
	at int64
	f  func()
}

var errBroken = errors.New("faultproxy: connection broken")

// StartBreaker starts a breaker on 127.0.0.1 in front of target
// ("127.0.0.1:PORT", plain HTTP) and closes it in t.Cleanup. Requests keep
// their Host header, so the Locations a registry builds point back at the
// breaker.
func StartBreaker(t testing.TB, target string) *Breaker {
	t.Helper()
	u, err := url.Parse("http://" + strings.TrimPrefix(target, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Breaker{}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errBroken) || r.Context().Err() != nil {
				panic(http.ErrAbortHandler) // the client's connection closes
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			if c.cutNow(true) {
				panic(http.ErrAbortHandler) // nothing of this request reaches the target
			}
			r.Body = &countingBody{rc: r.Body, c: c}
		}
		rp.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ReadHeaderTimeout = 30 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	c.Host = srv.Listener.Addr().String()
	return c
}

// Forwarded returns the request body bytes forwarded to the target so far.
func (c *Breaker) Forwarded() int64 { return c.forwarded.Load() }

// Cuts returns how many connections the breaker broke.
func (c *Breaker) Cuts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

// CutAt arms one cut once at bytes have been forwarded (counted from the
// start): midway through the body in flight (before false: the target
// receives the body up to that count, then the connection closes), or
// (before true) at the first request with a body that starts at or after
// that count, before any of it is forwarded.
func (c *Breaker) CutAt(at int64, before bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutAt, c.before = at, before
}

// Watch runs f (once, on the proxy's goroutine, before the bytes that
// cross the mark are forwarded) when the forwarded bytes reach at.
func (c *Breaker) Watch(at int64, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watches = append(c.watches, watch{at, f})
}

// cutNow reports (and disarms) a cut due at the start of a request.
func (c *Breaker) cutNow(start bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cutAt > 0 && c.before == start && c.forwarded.Load() >= c.cutAt {
		c.cutAt = 0
		c.cuts++
		return true
	}
	return false
}

// countingBody counts what the target is sent and cuts it when due.
type countingBody struct {
	rc io.ReadCloser
	c  *Breaker
}

func (b *countingBody) Read(p []byte) (int, error) {
	c := b.c
	c.mu.Lock()
	if c.cutAt > 0 && !c.before {
		if room := c.cutAt - c.forwarded.Load(); room <= 0 {
			c.mu.Unlock()
			if c.cutNow(false) {
				return 0, errBroken
			}
			c.mu.Lock()
		} else if int64(len(p)) > room {
			p = p[:room]
		}
	}
	var due []func()
	next := c.forwarded.Load() + int64(len(p))
	keep := c.watches[:0]
	for _, w := range c.watches {
		if w.at <= next {
			due = append(due, w.f)
		} else {
			keep = append(keep, w)
		}
	}
	c.watches = keep
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
	n, err := b.rc.Read(p)
	c.forwarded.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
