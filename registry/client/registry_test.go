package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/credentials"
)

var fastRetries = RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 3 * time.Second}

// server is an httptest registry whose handler the test writes.
func server(t *testing.T, h http.HandlerFunc) (*Client, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return New(&credentials.Chain{}, WithRetryPolicy(fastRetries)), strings.TrimPrefix(srv.URL, "http://")
}

func TestRetryTransientThenSucceed(t *testing.T) {
	var n atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
			w.Header().Set("Content-Type", string(MediaOCIIndex))
		}
	})
	repo, err := c.Repo(context.Background(), host, "ns/app", false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := repo.HeadManifest(context.Background(), "v1")
	if err != nil || d.Digest != "sha256:"+strings.Repeat("a", 64) || d.MediaType != MediaOCIIndex {
		t.Fatalf("got %+v, %v", d, err)
	}
	if got := c.Stats.Retries.Load(); got != 2 {
		t.Fatalf("retries = %d, want 2", got)
	}
}

func TestRetryGivesUpAndClassifies(t *testing.T) {
	var n atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, err := repo.HeadManifest(context.Background(), "v1")
	if err == nil || IsPermanent(err) || IsNotFound(err) {
		t.Fatalf("502 must be a transient error: %v", err)
	}
	if n.Load() != int32(fastRetries.Attempts) {
		t.Fatalf("%d attempts, want %d", n.Load(), fastRetries.Attempts)
	}
}

func TestNoRetryOnPermanent(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		notFound bool
	}{
		{http.StatusNotFound, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, true},
		{http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, false},
		{http.StatusUnauthorized, ``, false},
	} {
		var n atomic.Int32
		c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		})
		repo, _ := c.Repo(context.Background(), host, "ns/app", false)
		_, _, err := repo.GetManifest(context.Background(), "v1")
		if !IsPermanent(err) || IsNotFound(err) != tc.notFound || n.Load() != 1 {
			t.Errorf("%d: err=%v permanent=%v attempts=%d", tc.status, err, IsPermanent(err), n.Load())
		}
		if tc.body != "" && !strings.Contains(err.Error(), "DENIED") && !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			t.Errorf("error lacks the registry's code: %v", err)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var n atomic.Int32
	var first, second time.Time
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		second = time.Now()
		w.Header().Set("Content-Type", string(MediaDockerV2))
		io.WriteString(w, `{"schemaVersion":2}`)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	if _, _, err := repo.GetManifest(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	if gap := second.Sub(first); gap < 900*time.Millisecond { // lower bound only
		t.Fatalf("retried after %v, Retry-After said 1s", gap)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{"0", 0, true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := retryAfter(tc.h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v %v, want %v %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

// Each wait is drawn from [0, d] with d = min(Max, Base·2^(attempt-1)):
// never above d (so never above Max), and spread over the whole range
// (some draws in its upper half, many distinct values).
func TestBackoffIsCappedAndJittered(t *testing.T) {
	p := RetryPolicy{Attempts: 10, Base: 100 * time.Millisecond, Max: time.Second}
	for attempt := 1; attempt < 12; attempt++ {
		ceil := min(p.Max, p.Base<<(attempt-1))
		seen := map[time.Duration]bool{}
		var highest time.Duration
		for range 200 {
			d := backoff(p, attempt)
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: backoff %v out of [0, %v]", attempt, d, ceil)
			}
			seen[d] = true
			highest = max(highest, d)
		}
		if highest <= ceil/2 {
			t.Errorf("attempt %d: the longest of 200 waits is %v, want some above %v", attempt, highest, ceil/2)
		}
		if len(seen) < 100 {
			t.Errorf("attempt %d: %d distinct waits in 200 draws: no jitter", attempt, len(seen))
		}
	}
}

func TestTagsPagination(t *testing.T) {
	var pages atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		pages.Add(1)
		switch r.URL.Query().Get("last") {
		case "":
			w.Header().Set("Link", `</v2/ns/app/tags/list?last=b&n=2>; rel="next"`)
			io.WriteString(w, `{"name":"ns/app","tags":["a","b"]}`)
		case "b":
			w.Header().Set("Link", fmt.Sprintf(`<http://%s/v2/ns/app/tags/list?last=d&n=2>; rel="next"`, r.Host))
			io.WriteString(w, `{"name":"ns/app","tags":["c","d"]}`)
		default:
			io.WriteString(w, `{"name":"ns/app","tags":["e"]}`)
		}
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	tags, invalid, err := repo.Tags(context.Background())
	if err != nil || strings.Join(tags, ",") != "a,b,c,d,e" || len(invalid) != 0 || pages.Load() != 3 {
		t.Fatalf("tags %v, err %v, pages %d", tags, err, pages.Load())
	}
}

func TestGetManifestVerifiesDigest(t *testing.T) {
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(MediaDockerV2))
		io.WriteString(w, `{"schemaVersion":2,"tampered":true}`)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, _, err := repo.GetManifest(context.Background(), "sha256:"+strings.Repeat("b", 64))
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("want a permanent digest error, got %v", err)
	}
}

func TestSniffMediaType(t *testing.T) {
	for raw, want := range map[string]types.MediaType{
		`{"schemaVersion":2,"mediaType":"` + string(MediaDockerList) + `","manifests":[]}`: MediaDockerList,
		`{"schemaVersion":2,"manifests":[]}`:                                               MediaOCIIndex,
		`{"schemaVersion":2,"config":{},"layers":[]}`:                                      MediaOCIManifest,
		`{"schemaVersion":1,"signatures":[]}`:                                              MediaDockerSigned,
		`{"schemaVersion":1}`:                                                              MediaDockerSchema1,
	} {
		if got := sniffMediaType([]byte(raw)); got != want {
			t.Errorf("sniff(%s) = %s, want %s", raw, got, want)
		}
	}
}

func TestDebugLogHasNoQueryOrHeaders(t *testing.T) {
	var b strings.Builder
	logger := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries), WithLogger(logger))
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, _ = repo.HeadBlob(context.Background(), "sha256:"+strings.Repeat("c", 64))
	req, _ := repo.newRequest(context.Background(), http.MethodGet, "/blobs/uploads/x?_state=SECRETSTATE&token=abc", nil)
	req.Header.Set("Authorization", "Bearer SECRETTOKEN")
	hc, _ := repo.client(context.Background())
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
	}
	out := b.String()
	if !strings.Contains(out, "/v2/ns/app/blobs/") || strings.Contains(out, "SECRET") {
		t.Fatalf("debug log:\n%s", out)
	}
}

// A bearer token is fetched once per scope and renewed before it expires.
func TestTokenOncePerScopeAndRenewed(t *testing.T) {
	var tokens atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			n := tokens.Add(1)
			fmt.Fprintf(w, `{"token":"tok-%d","expires_in":1}`, n)
		case r.Header.Get("Authorization") == "":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("d", 64))
			w.Header().Set("Content-Type", string(MediaOCIManifest))
		}
	}))
	t.Cleanup(srv.Close)
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries))
	repo, _ := c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)
	for range 5 {
		if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := tokens.Load(); n != 1 {
		t.Fatalf("%d token requests for 5 requests in one scope, want 1", n)
	}
	time.Sleep(1100 * time.Millisecond) // past expires_in: lower bound only
	if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	if n := tokens.Load(); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2 (renewed once)", n)
	}
}

// Every request carries the configured User-Agent once, the ping's, the
// API's and a retried one's alike (it is set where a request is made).
func TestUserAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, strings.Join(r.Header.Values("User-Agent"), "|"))
		n := len(agents)
		mu.Unlock()
		if r.URL.Path == "/v2/" {
			return
		}
		if n == 2 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		w.Header().Set("Content-Type", string(MediaOCIIndex))
	}))
	t.Cleanup(srv.Close)
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries), WithUserAgent("imagesync/test"))
	repo, err := c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) < 3 {
		t.Fatalf("%d requests, want the ping, a refused HEAD and its retry", len(agents))
	}
	for i, a := range agents {
		if a != "imagesync/test" {
			t.Errorf("request %d: User-Agent %q", i+1, a)
		}
	}
}
