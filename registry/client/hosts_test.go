package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/imagesync/credentials"
)

func TestAIMDLimit(t *testing.T) {
	h := (&hostTable{policy: HostPolicy{MaxConns: 8}}).get("r.io")
	ctx := context.Background()
	for range 3 {
		_ = h.acquire(ctx)
		h.release(&http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}, 0)
	}
	if h.limit != 1 {
		t.Fatalf("limit after three 429s = %v, want 1", h.limit)
	}
	for range 20 {
		_ = h.acquire(ctx)
		h.release(&http.Response{StatusCode: http.StatusOK, Header: http.Header{}}, 0)
	}
	if h.limit <= 1 || h.limit >= 8 {
		t.Fatalf("limit after 20 successes = %v: want a gradual recovery", h.limit)
	}
}

// A 429 with Retry-After pauses the whole host, not just the one request.
func TestRetryAfterPausesTheHost(t *testing.T) {
	var first atomic.Bool
	var mu sync.Mutex
	var times []time.Time
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if first.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("e", 64))
		w.Header().Set("Content-Type", string(MediaOCIManifest))
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	start := time.Now()
	if _, err := repo.HeadManifest(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	// a request made now, by anyone, waits for the pause too
	if _, err := repo.HeadManifest(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 || times[1].Sub(start) < 900*time.Millisecond {
		t.Fatalf("%d requests; the retry came %v after the start", len(times), times[1].Sub(start))
	}
}

func TestDockerHubQuota(t *testing.T) {
	var gets atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		w.Header().Set("Ratelimit-Limit", "100;w=21600")
		w.Header().Set("Ratelimit-Remaining", "0;w=21600")
		w.Header().Set("Content-Type", string(MediaOCIManifest))
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("f", 64))
		io.WriteString(w, `{"schemaVersion":2}`)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	if _, err := repo.HeadManifest(context.Background(), "a"); err != nil { // HEADs are free
		t.Fatal(err)
	}
	_, _, err := repo.GetManifest(context.Background(), "a")
	var pl *PullLimitError
	if !errors.As(err, &pl) || !IsPermanent(err) || gets.Load() != 0 || !strings.Contains(err.Error(), "6h0m0s window") {
		t.Fatalf("err %v, %d GETs sent", err, gets.Load())
	}
}

// WithTimeout is an idle timeout, on both sides: a body that stops moving
// fails (not before the timeout, and rather than hanging), and a body that
// keeps moving is never cut, however long it takes in all.
func TestIdleTimeout(t *testing.T) {
	const timeout = time.Second
	stalled, trickled := "sha256:"+strings.Repeat("0", 64), "sha256:"+strings.Repeat("1", 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, stalled):
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // then stall
		case strings.HasSuffix(r.URL.Path, trickled):
			w.Header().Set("Content-Length", "15")
			for range 15 { // 1.5 s in all, never 1 s without a byte
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(timeout / 10)
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := New(&credentials.Chain{}, WithRetryPolicy(RetryPolicy{Attempts: 1}), WithTimeout(timeout))
	repo, _ := c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)

	rc, _, err := repo.GetBlob(context.Background(), stalled)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(rc); done <- err }()
	select {
	case err = <-done:
	case <-time.After(30 * timeout):
		t.Fatalf("a body stalled for %v has not failed", 30*timeout)
	}
	took := time.Since(start)
	if err == nil || !IsTransientNetwork(err) {
		t.Fatalf("a stalled body must fail with a transient network error, got %v after %v", err, took)
	}
	if took < timeout*8/10 { // the last read may have started a little before start
		t.Fatalf("a stalled body failed after %v, before the idle timeout of %v", took, timeout)
	}

	rc, _, err = repo.GetBlob(context.Background(), trickled)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || string(b) != strings.Repeat("x", 15) {
		t.Fatalf("a body that keeps moving for longer than the timeout: %q, %v", b, err)
	}
}

// --rate is a token bucket of the rate's size: the first burst goes at
// once, then one request per 1/rate. Both sides are checked against the
// arrival times: no request arrives before the bucket allows it, and the
// burst is not paced (it takes less than half the time of the as many
// requests paced after it, which take 1 s at least).
func TestRateLimit(t *testing.T) {
	const rate, n = 5, 10 // a burst of 5, then 5 paced: 1 s at least
	var mu sync.Mutex
	var arrivals []time.Time
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		w.Header().Set("Content-Type", string(MediaOCIManifest))
	})
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries), WithHostPolicy(HostPolicy{Rate: rate}))
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	start := time.Now()
	for range n {
		if _, err := repo.HeadManifest(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != n {
		t.Fatalf("%d HEADs arrived, want %d", len(arrivals), n)
	}
	for i, at := range arrivals {
		earliest := start.Add(time.Duration(max(0, i+1-rate)) * time.Second / rate)
		if at.Before(earliest.Add(-10 * time.Millisecond)) {
			t.Errorf("HEAD %d arrived %v after the start, before the bucket allowed it (%v)", i+1, at.Sub(start), earliest.Sub(start))
		}
	}
	burst, paced := arrivals[rate-1].Sub(arrivals[0]), arrivals[n-1].Sub(arrivals[rate-1])
	if 2*burst >= paced {
		t.Errorf("the first %d HEADs took %v, the %d paced after them %v: the burst was paced too", rate, burst, n-rate, paced)
	}
}

func TestHostPolicyOverrides(t *testing.T) {
	tab := &hostTable{policy: HostPolicy{MaxConns: 32, Hosts: map[string]HostPolicy{"harbor.example.com": {MaxConns: 2, Rate: 5}, "r.io:5000": {Rate: 1}}}}
	for host, want := range map[string]struct {
		conns int
		rate  float64
	}{"harbor.example.com": {2, 5}, "HARBOR.example.com": {2, 5}, "r.io:5000": {32, 1}, "r.io": {32, 0}} {
		h := tab.get(host)
		var rate float64
		if h.bucket != nil {
			rate = float64(h.bucket.Limit())
		}
		if h.policy.MaxConns != want.conns || int(h.limit) != want.conns || rate != want.rate {
			t.Errorf("%s: max-conns %d (limit %v), rate %v; want %d, %v", host, h.policy.MaxConns, h.limit, rate, want.conns, want.rate)
		}
	}
}
