package faultproxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The token bucket lets through at most its burst plus its rate times the
// time elapsed; the rest is refused with 429 and Retry-After, unseen by the
// target. The other faults apply to what it lets through.
func TestLimit(t *testing.T) {
	srv, hits := backend(t, 10)
	p := Start(t, srv.URL, Plan{Seed: 3, Limit: 40, LimitBurst: 4, Rate5xx: 0.5, Status5xx: http.StatusServiceUnavailable,
		Exempt: func(r *http.Request) bool { return r.URL.Path == "/token" }})
	c := freshClient()
	start := time.Now()
	codes := map[int]int{}
	for range 60 {
		resp, body := mustDo(t, c, http.MethodGet, p.URL("/echo"), nil)
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && (resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "TOOMANYREQUESTS")) {
			t.Fatalf("refusal: Retry-After %q, body %s", resp.Header.Get("Retry-After"), body)
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("server error %d, want 503 only", resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	for range 5 { // exempt: never limited
		if resp, _ := mustDo(t, c, http.MethodGet, p.URL("/token"), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("exempt request got %d", resp.StatusCode)
		}
	}
	n := checkCounts(t, p)
	let := n.Passed + n.ServerErrors - 5
	if n.Limited == 0 || codes[http.StatusTooManyRequests] != n.Limited || n.TooMany != 0 {
		t.Errorf("counts %+v, codes %v", n, codes)
	}
	if max := 4 + int(40*elapsed.Seconds()) + 1; let > max {
		t.Errorf("%d requests let through in %v, the bucket allows %d", let, elapsed, max)
	}
	if n.ServerErrors == 0 || codes[http.StatusServiceUnavailable] != n.ServerErrors {
		t.Errorf("no 503 among the requests let through: %+v", n)
	}
	if got := hits.Load(); got != int64(n.Passed) {
		t.Errorf("target saw %d requests, %d passed", got, n.Passed)
	}
	for _, e := range p.Log() {
		if e.Fault == FaultLimited && e.Status != http.StatusTooManyRequests {
			t.Errorf("log entry %v", e)
		}
	}

	// A new limit takes effect at once; no limit lets everything through.
	p.SetPlan(Plan{Seed: 3})
	for range 20 {
		if resp, _ := mustDo(t, c, http.MethodGet, p.URL("/echo"), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("without a limit: %d", resp.StatusCode)
		}
	}
	if _, err := New(srv.URL, Plan{Limit: -1}); err == nil {
		t.Error("a negative limit was accepted")
	}
	if _, err := New(srv.URL, Plan{Status5xx: 404}); err == nil {
		t.Error("Status5xx 404 was accepted")
	}
}
