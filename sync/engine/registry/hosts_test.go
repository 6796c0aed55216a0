package registry

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
		w.Header().Set("Content-Type", MediaOCIManifest)
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
		w.Header().Set("Content-Type", MediaOCIManifest)
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

func TestIdleTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then stall
	}))
	t.Cleanup(srv.Close)
	c := New(&credentials.Chain{}, WithRetryPolicy(RetryPolicy{Attempts: 1}), WithTimeout(300*time.Millisecond))
	repo, _ := c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)
	rc, _, err := repo.GetBlob(context.Background(), "sha256:"+strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	_, err = io.ReadAll(rc)
	if err == nil || !IsTransientNetwork(err) {
		t.Fatalf("a stalled body must fail with a transient network error, got %v after %v", err, time.Since(start))
	}
}

func TestRateLimit(t *testing.T) {
	var n atomic.Int32
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		w.Header().Set("Content-Type", MediaOCIManifest)
	})
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries), WithHostPolicy(HostPolicy{Rate: 10}))
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	start := time.Now()
	for range 15 { // 10 in the first burst, then 10 per second
		if _, err := repo.HeadManifest(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 400*time.Millisecond { // lower bound only
		t.Fatalf("16 requests at 10/s took %v", took)
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
