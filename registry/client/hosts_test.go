package client

import (
	"context"
	"errors"
	"fmt"
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

// The pace is learned from the answers: a little below the rate of the
// answers before the first 429, cut once per second of refusals, raised
// by every answer.
func TestPaceLearnsFromRefusals(t *testing.T) {
	var p pacer
	t0 := time.Unix(1000, 0)
	for i := range 50 { // 100 answers per second
		p.answered(t0.Add(time.Duration(i) * 10 * time.Millisecond))
	}
	if p.current() != 0 {
		t.Fatal("paced before any refusal")
	}
	at := t0.Add(500 * time.Millisecond)
	if got := p.refused(at); got < 85 || got > 95 {
		t.Fatalf("first pace %v, want 0.9 × ~100/s", got)
	}
	first := p.current()
	if got := p.refused(at.Add(300 * time.Millisecond)); got != first {
		t.Fatalf("a second refusal within a second cut the pace to %v", got)
	}
	if got := p.refused(at.Add(1100 * time.Millisecond)); got != first*paceCut {
		t.Fatalf("pace after a later refusal %v, want %v", got, first*paceCut)
	}
	cut := p.current()
	for range 100 {
		p.answered(at.Add(2 * time.Second))
	}
	if got := p.current(); got <= cut || got > cut+100*paceRise/cut {
		t.Fatalf("pace after 100 answers %v (from %v): want a gradual rise", got, cut)
	}
	for range 100 {
		p.refused(at.Add(3 * time.Second))
		at = at.Add(paceCutEvery)
	}
	if p.current() != paceMin {
		t.Fatalf("pace after many refusals %v, want the floor %v", p.current(), paceMin)
	}
}

// A 429 no longer stops the host or halves its connections; a long
// Retry-After still stops it.
func TestLongRetryAfterPausesTheHost(t *testing.T) {
	h := (&hostTable{policy: HostPolicy{MaxConns: 8}}).get("r.io")
	ctx := context.Background()
	tooMany := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}
	_ = h.acquire(ctx)
	h.release(tooMany, time.Second)
	if !h.pausedUntil.IsZero() || h.limit != 8 {
		t.Fatalf("after a 429 with Retry-After 1: paused until %v, %v connections", h.pausedUntil, h.limit)
	}
	_ = h.acquire(ctx)
	h.release(tooMany, time.Minute)
	if time.Until(h.pausedUntil) < 50*time.Second {
		t.Fatalf("a Retry-After of a minute paused the host until %v", h.pausedUntil)
	}
}

// A 429 with a short Retry-After delays the refused request by that much;
// the host's other requests go on, paced.
func TestRetryAfterDelaysOnlyTheRefused(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	refused := make(chan struct{})
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		n := 0
		for _, p := range seen {
			if strings.HasSuffix(p, "/refused") {
				n++
			}
		}
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/refused") && n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			close(refused)
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("e", 64))
		w.Header().Set("Content-Type", string(MediaOCIManifest))
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	ctx := context.Background()
	for range 20 { // the host answers quickly: the pace learned will be high
		if _, err := repo.HeadManifest(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := repo.HeadManifest(ctx, "refused"); done <- err }()
	<-refused
	for range 3 {
		if _, err := repo.HeadManifest(ctx, "other"); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("the refused request was retried after %v, before its Retry-After", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := seen[len(seen)-1]; !strings.HasSuffix(last, "/refused") {
		t.Fatalf("the other requests waited for the refused one: %v", seen[len(seen)-5:])
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

func TestParseQuota(t *testing.T) {
	for _, tc := range []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"76;w=21600", 76, 6 * time.Hour, true},
		{"5", 5, 0, true},
		{" 0 ; w=60", 0, time.Minute, true},
		{"100;w=21600;comment=x", 100, 6 * time.Hour, true},
		{"", 0, 0, false},
		{"-1;w=21600", 0, 0, false},
		{"many;w=21600", 0, 0, false},
		{"1000001", 0, 0, false},
		{"5;w=0", 0, 0, false},
		{"5;w=-3", 0, 0, false},
		{"5;w=604801", 0, 0, false},
		{"5;w=" + strings.Repeat("9", 80), 0, 0, false},
	} {
		n, w, ok := parseQuota(tc.in)
		if n != tc.n || w != tc.window || ok != tc.ok {
			t.Errorf("parseQuota(%q) = %d, %s, %v; want %d, %s, %v", tc.in, n, w, ok, tc.n, tc.window, tc.ok)
		}
	}
}

func TestReservePulls(t *testing.T) {
	var gets atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		left := 5 - gets.Load()
		if r.Method == http.MethodGet {
			left = 5 - gets.Add(1)
		}
		w.Header().Set("Ratelimit-Remaining", fmt.Sprintf("%d;w=21600", left))
		w.Header().Set("Content-Type", string(MediaOCIManifest))
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("f", 64))
		io.WriteString(w, `{"schemaVersion":2}`)
	})
	ctx := context.Background()
	repo, _ := c.Repo(ctx, host, "ns/app", false)
	if _, release, err := repo.ReservePulls(ctx, 100); err != nil {
		t.Fatalf("no quota known yet: %v", err)
	} else {
		release()
	}
	if _, err := repo.HeadManifest(ctx, "a"); err != nil { // its answer says 5 left, and it costs nothing
		t.Fatal(err)
	}
	// 5 left, no reserve: 4 set aside leave 1 for everybody else.
	rctx, release, err := repo.ReservePulls(ctx, 4)
	if err != nil {
		t.Fatalf("4 pulls of 5: %v", err)
	}
	var pl *PullLimitError
	if _, _, err := repo.ReservePulls(ctx, 2); !errors.As(err, &pl) || pl.ResetBy.IsZero() || !strings.Contains(err.Error(), "the window resets by") {
		t.Errorf("2 more pulls with 4 of 5 set aside: %v", err)
	}
	if _, _, err := repo.GetManifest(ctx, "a"); err != nil {
		t.Fatalf("the pull not set aside: %v", err)
	}
	if _, _, err := repo.GetManifest(ctx, "a"); !errors.As(err, &pl) {
		t.Fatalf("a GET that would take a pull set aside: %v", err)
	}
	for range 4 { // the reservation's GETs spend it
		if _, _, err := repo.GetManifest(rctx, "a"); err != nil {
			t.Fatalf("a GET under the reservation: %v", err)
		}
	}
	release()
	if _, _, err := repo.ReservePulls(ctx, 1); !errors.As(err, &pl) || pl.Remaining != 0 {
		t.Errorf("nothing left: %v", err)
	}
	if gets.Load() != 5 {
		t.Errorf("%d GETs sent, want 5", gets.Load())
	}
}

// A freed slot goes to the first waiter, and only to it; a waiter that
// gives up leaves the queue; a pause holds the queue until it ends.
func TestHostSlotsFirstComeFirstServed(t *testing.T) {
	h := (&hostTable{policy: HostPolicy{MaxConns: 1}}).get("r.io")
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			h.mu.Lock()
			got := h.waiters.Len()
			h.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters queued, want %d", got, n)
			}
		}
	}
	order := make(chan int, 4)
	wait := func(ctx context.Context, id int) chan error {
		done := make(chan error, 1)
		go func() {
			err := h.acquire(ctx)
			if err == nil {
				order <- id
			}
			done <- err
		}()
		return done
	}
	w1 := wait(ctx, 1)
	queued(1)
	cctx, cancel := context.WithCancel(ctx)
	w2 := wait(cctx, 2)
	queued(2)
	w3 := wait(ctx, 3)
	queued(3)
	cancel()
	if err := <-w2; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	queued(2)
	select {
	case id := <-order:
		t.Fatalf("waiter %d got a slot while the only one was held", id)
	case <-time.After(20 * time.Millisecond):
	}

	h.release(nil, 0)
	if id := <-order; id != 1 {
		t.Fatalf("first slot went to waiter %d, want 1", id)
	}
	<-w1
	select {
	case id := <-order:
		t.Fatalf("one release woke waiter %d too", id)
	case <-time.After(20 * time.Millisecond):
	}

	// A pause: the release frees the slot but nobody gets it until the
	// pause ends.
	h.mu.Lock()
	h.pauseUntil(time.Now().Add(150 * time.Millisecond))
	h.mu.Unlock()
	released := time.Now()
	h.release(nil, 0)
	if id := <-order; id != 3 || time.Since(released) < 100*time.Millisecond {
		t.Fatalf("waiter %d got the slot %v after a release in a 150 ms pause", id, time.Since(released))
	}
	<-w3
	h.release(nil, 0)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inflight != 0 || h.waiters.Len() != 0 {
		t.Fatalf("after every release: %d in flight, %d waiting", h.inflight, h.waiters.Len())
	}
}

// Many waiters, some giving up at any moment: every slot handed out comes
// back, and no more than the limit are ever held.
func TestHostSlotsUnderCancellation(t *testing.T) {
	h := (&hostTable{policy: HostPolicy{MaxConns: 3}}).get("r.io")
	var held, most atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*100*time.Microsecond)
			defer cancel()
			if i%2 == 0 {
				ctx = context.Background()
			}
			if h.acquire(ctx) != nil {
				return
			}
			n := held.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(50 * time.Microsecond)
			held.Add(-1)
			h.release(nil, 0)
		})
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if most.Load() > 3 || h.inflight != 0 || h.waiters.Len() != 0 {
		t.Fatalf("at most %d held (limit 3); after all: %d in flight, %d waiting", most.Load(), h.inflight, h.waiters.Len())
	}
}
