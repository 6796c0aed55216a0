package client

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// RetryPolicy bounds the retries of one request inside the transport.
type RetryPolicy struct {
	Attempts      int           // total attempts per request, ≥ 1
	Base          time.Duration // first backoff
	Max           time.Duration // backoff cap
	MaxRetryAfter time.Duration // longest Retry-After honoured
}

// DefaultRetryPolicy retries a request up to 4 more times, 200ms to 10s apart.
var DefaultRetryPolicy = RetryPolicy{Attempts: 5, Base: 200 * time.Millisecond, Max: 10 * time.Second, MaxRetryAfter: 2 * time.Minute}

// Stats counts what the transport did, for the report.
type Stats struct {
	Requests  atomic.Int64
	Retries   atomic.Int64
	Tokens    atomic.Int64 // bearer tokens fetched
	Cancelled atomic.Int64 // upload sessions cancelled (DELETE)
}

// retryTransport retries transient failures of requests it can replay (no
// body, or a body with GetBody). It sits below authentication so token
// requests are retried too. Streaming uploads cannot be replayed here: the
// engine restarts them from a fresh source read.
type retryTransport struct {
	inner  http.RoundTripper
	policy RetryPolicy
	stats  *Stats
	log    *slog.Logger
	hosts  *hostTable
	// observer hears about each attempt and retry; nil: none.
	observer Observer
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		h := rt.hosts.get(r.URL.Host)
		pull, err := h.takePull(r.URL.Host, r)
		if err != nil {
			return nil, err
		}
		if err := h.acquire(ctx); err != nil {
			if pull {
				h.endPull()
			}
			return nil, err
		}
		start := time.Now()
		rt.stats.Requests.Add(1)
		resp, err := rt.inner.RoundTrip(r)
		rt.logRequest(r, resp, err, time.Since(start), attempt)
		if rt.observer != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			rt.observer.Request(r.URL.Host, r.Method, status, err)
		}
		wait := backoff(rt.policy, attempt)
		if resp != nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				wait = min(ra, rt.policy.MaxRetryAfter)
			}
		}
		// The slot is freed when the answer's headers arrive, not when its
		// body is consumed: a copy within one registry holds a GET body
		// open while it PUTs, and must not wait for itself.
		h.release(resp, wait)
		if pull {
			h.endPull() // the answer's quota headers count it now
		}
		transient := false
		if err != nil {
			transient = ctx.Err() == nil && IsTransientNetwork(err)
		} else {
			transient = IsTransientStatus(resp.StatusCode)
			if resp.StatusCode == http.StatusTooManyRequests {
				if qerr := h.quotaExhausted(r.URL.Host, r); qerr != nil {
					resp.Body.Close()
					return nil, qerr // Docker Hub's quota: hours away, not worth a retry
				}
			}
		}
		if !transient || !replayable || attempt >= rt.policy.Attempts || ctx.Value(noRetryKey{}) != nil {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		rt.stats.Retries.Add(1)
		if rt.observer != nil {
			rt.observer.Retry(r.URL.Host)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (rt *retryTransport) logRequest(r *http.Request, resp *http.Response, err error, d time.Duration, attempt int) {
	if rt.log == nil || !rt.log.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	// Only host and path: query strings may hold upload state or signed URLs,
	// and headers (Authorization) are never logged.
	attrs := []any{"method", r.Method, "url", r.URL.Scheme + "://" + r.URL.Host + r.URL.Path, "duration", d.Round(time.Millisecond), "attempt", attempt}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	} else {
		attrs = append(attrs, "status", resp.StatusCode)
	}
	rt.log.Debug("request", attrs...)
}

// backoff is exponential with full jitter: uniform in [0, min(Max, Base·2^(n-1))].
func backoff(p RetryPolicy, attempt int) time.Duration {
	d := p.Base << (attempt - 1)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// retryAfter parses a Retry-After header in seconds or HTTP-date form.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type noRetryKey struct{}

// withoutRetries marks a request to be sent once, whatever fails: the
// plain-HTTP ping of a port where the HTTPS one found nothing listening
// (the same port: the job's next attempt pings again anyway).
func withoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}
