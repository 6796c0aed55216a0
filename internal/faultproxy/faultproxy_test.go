package faultproxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// freshClient opens a new connection per request, so the transport never
// retries a request on a reused connection behind the test's back.
func freshClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
		Timeout:   30 * time.Second,
		// Do not follow redirects: the registry answers with Location.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func do(t *testing.T, c *http.Client, method, u string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func mustDo(t *testing.T, c *http.Client, method, u string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := do(t, c, method, u, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp, b
}

// backend is a plain test server: GET /blob answers `size` bytes with a
// Content-Length, /echo answers the request's Host and body, /empty answers
// 201 without a body; it counts the requests it sees.
func backend(t *testing.T, size int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	blob := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/blob":
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			_, _ = w.Write(blob)
		case "/empty":
			w.WriteHeader(http.StatusCreated)
		default:
			w.Header().Set("X-Host", r.Host)
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func checkCounts(t *testing.T, p *Proxy) Counts {
	t.Helper()
	c := p.Counts()
	if sum := c.Passed + c.TooMany + c.ServerErrors + c.ResetsResponse + c.ResetsRequest + c.Slow + c.Limited; sum != c.Requests {
		t.Errorf("counts do not add up: %+v (sum %d)", c, sum)
	}
	if n := len(p.Log()); n != c.Requests {
		t.Errorf("log has %d entries, counts say %d requests", n, c.Requests)
	}
	return c
}

func TestPassThroughAndStreaming(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			_, _ = io.WriteString(w, "second")
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Forwarded-For", r.Header.Get("X-Forwarded-For"))
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	p := Start(t, srv.URL, Plan{Seed: 7})
	c := freshClient()

	resp, body := mustDo(t, c, http.MethodPut, p.URL("/echo?x=1"), []byte("hello"))
	if resp.StatusCode != http.StatusAccepted || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Host"); got != p.Host {
		t.Errorf("backend saw Host %q, want the proxy's %q", got, p.Host)
	}
	if got := resp.Header.Get("X-Forwarded-For"); got != "" {
		t.Errorf("proxy added X-Forwarded-For %q", got)
	}

	// The first part must arrive before the backend writes the rest.
	resp, err := c.Get(p.URL("/stream"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, buf); got <- err }()
	select {
	case err := <-got:
		if err != nil || string(buf) != "first" {
			t.Fatalf("first part: %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy buffers the response body")
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest: %q, %v", rest, err)
	}

	cnt := checkCounts(t, p)
	if cnt != (Counts{Requests: 2, Passed: 2}) {
		t.Errorf("counts %+v", cnt)
	}
	want := []Entry{{Method: "PUT", Path: "/echo", RawQuery: "x=1", Status: 202}, {Method: "GET", Path: "/stream", Status: 200}}
	if log := p.Log(); !slices.Equal(log, want) {
		t.Errorf("log %v, want %v", log, want)
	}
}

func TestTooManyRequests(t *testing.T) {
	srv, hits := backend(t, 10)
	t.Run("RetryAfter", func(t *testing.T) {
		p := Start(t, srv.URL, Plan{Seed: 1, Rate429: 1, RetryAfter: "2"})
		for range 5 {
			resp, _ := mustDo(t, freshClient(), http.MethodPut, p.URL("/echo"), []byte("body"))
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("got %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
	})
	t.Run("Mixed", func(t *testing.T) {
		p := Start(t, srv.URL, Plan{Seed: 1, Rate429: 1})
		seen := map[string]int{}
		for range 40 {
			resp, body := mustDo(t, freshClient(), http.MethodGet, p.URL("/blob"), nil)
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "TOOMANYREQUESTS") {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			v, ok := resp.Header["Retry-After"]
			seen[strings.Join(v, ",")+"/"+strconv.FormatBool(ok)]++
		}
		if len(seen) != 2 || seen["1/true"] == 0 || seen["/false"] == 0 {
			t.Errorf("Retry-After values: %v, want both \"1\" and none", seen)
		}
		if c := checkCounts(t, p); c.TooMany != 40 {
			t.Errorf("counts %+v", c)
		}
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("backend saw %d requests", n)
	}
}

func TestServerErrors(t *testing.T) {
	srv, hits := backend(t, 10)
	p := Start(t, srv.URL, Plan{Seed: 3, Rate5xx: 1})
	codes := map[int]int{}
	for range 30 {
		resp, _ := mustDo(t, freshClient(), http.MethodGet, p.URL("/blob"), nil)
		codes[resp.StatusCode]++
	}
	if len(codes) != 3 || codes[500] == 0 || codes[502] == 0 || codes[503] == 0 {
		t.Errorf("status codes %v, want 500, 502 and 503", codes)
	}
	if hits.Load() != 0 {
		t.Errorf("backend saw %d requests", hits.Load())
	}
	checkCounts(t, p)
}

// seedFor returns a seed whose first candidate request, with RateReset 1,
// gets the given reset fault.
func seedFor(t *testing.T, fault string) int64 {
	t.Helper()
	for seed := int64(1); seed < 100; seed++ {
		rng := newRand(seed)
		_, v := rng.Float64(), rng.Uint64()
		if (v%2 == 1) == (fault == FaultResetRequest) {
			return seed
		}
	}
	t.Fatal("no seed found")
	return 0
}

// isReset reports a truncated body or a reset connection.
func isReset(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func TestResets(t *testing.T) {
	srv, hits := backend(t, 100_000)
	type tc struct {
		fault, method, path string
		body                []byte
		// doErr: the client gets no response at all; otherwise the body
		// read fails.
		doErr bool
	}
	big := make([]byte, 1<<20)
	for _, c := range []tc{
		{FaultResetResponse, http.MethodGet, "/blob", nil, false},
		{FaultResetResponse, http.MethodPut, "/echo", []byte("short echo"), false},
		{FaultResetResponse, http.MethodHead, "/blob", nil, true},
		{FaultResetResponse, http.MethodPost, "/empty", []byte("x"), true},
		{FaultResetRequest, http.MethodPut, "/echo", big, true},
		{FaultResetRequest, http.MethodGet, "/blob", nil, true},
	} {
		t.Run(c.fault+"/"+c.method+c.path, func(t *testing.T) {
			before := hits.Load()
			p := Start(t, srv.URL, Plan{Seed: seedFor(t, c.fault), RateReset: 1})
			req, _ := http.NewRequest(c.method, p.URL(c.path), bytes.NewReader(c.body))
			if c.body == nil {
				req.Body = nil
			}
			resp, err := freshClient().Do(req)
			if c.doErr {
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					t.Fatalf("got a response %d (%d bytes, read error %v), want a transport error", resp.StatusCode, len(b), rerr)
				}
				t.Logf("transport error: %v", err)
			} else {
				if err != nil {
					t.Fatalf("want the headers, got %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !isReset(err) {
					t.Fatalf("read %d of %d bytes, error %v: want io.ErrUnexpectedEOF or a reset", len(b), resp.ContentLength, err)
				}
				if resp.ContentLength > 0 && int64(len(b)) != resp.ContentLength/2 {
					t.Errorf("read %d bytes before the cut, want %d", len(b), resp.ContentLength/2)
				}
				t.Logf("status %d, read %d bytes, then: %v", resp.StatusCode, len(b), err)
			}
			log := p.Log()
			if len(log) != 1 || log[0].Fault != c.fault {
				t.Fatalf("log %v, want one %s", log, c.fault)
			}
			wantHits := int64(1)
			if c.fault == FaultResetRequest {
				wantHits = 0
			}
			if got := hits.Load() - before; got != wantHits {
				t.Errorf("backend saw %d requests, want %d", got, wantHits)
			}
			checkCounts(t, p)
		})
	}
}

// run sends a fixed sequence of requests through p, one at a time.
func run(t *testing.T, p *Proxy, n int) {
	t.Helper()
	for i := range n {
		method, path, body := http.MethodGet, "/blob", []byte(nil)
		if i%3 == 1 {
			method, path, body = http.MethodPut, "/echo", []byte("payload "+strconv.Itoa(i))
		}
		_, _, _ = do(t, freshClient(), method, p.URL(fmt.Sprintf("%s?i=%d", path, i)), body)
	}
}

func TestDeterminism(t *testing.T) {
	srv, _ := backend(t, 4096)
	plan := Plan{Rate429: 0.15, Rate5xx: 0.15, RateReset: 0.2, RateSlow: 0.1, SlowFirstByte: time.Millisecond}
	faults := func(seed int64) ([]Entry, Counts) {
		pl := plan
		pl.Seed = seed
		p := Start(t, srv.URL, pl)
		run(t, p, 60)
		return p.Log(), checkCounts(t, p)
	}
	a, ca := faults(42)
	b, cb := faults(42)
	c, _ := faults(43)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different logs:\n%v\n%v", a, b)
	}
	if ca != cb {
		t.Errorf("same seed, different counts: %+v %+v", ca, cb)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same faults")
	}
	if ca.Passed == 0 || ca.TooMany == 0 || ca.ServerErrors == 0 || ca.ResetsResponse == 0 || ca.ResetsRequest == 0 || ca.Slow == 0 {
		t.Errorf("not every kind was injected in 60 requests: %+v", ca)
	}
	t.Logf("seed 42: %+v", ca)
}

func TestOnlyExemptSetPlan(t *testing.T) {
	srv, hits := backend(t, 10)
	p := Start(t, srv.URL, Plan{
		Seed:    5,
		Rate429: 1,
		Only:    func(r *http.Request) bool { return r.URL.Path != "/v2/" },
		Exempt:  func(r *http.Request) bool { return r.URL.Path == "/token" },
	})
	c := freshClient()
	for _, path := range []string{"/v2/", "/token", "/blob", "/token", "/v2/"} {
		resp, _ := mustDo(t, c, http.MethodGet, p.URL(path), nil)
		want := http.StatusOK
		if path == "/blob" {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	p.SetPlan(Plan{Seed: 5}) // faults off
	for range 3 {
		if resp, _ := mustDo(t, c, http.MethodGet, p.URL("/blob"), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("after SetPlan: %d", resp.StatusCode)
		}
	}
	if got := checkCounts(t, p); got != (Counts{Requests: 8, Passed: 7, TooMany: 1}) {
		t.Errorf("counts %+v", got)
	}
	if hits.Load() != 7 {
		t.Errorf("backend saw %d requests, want 7", hits.Load())
	}
}

func TestInvalid(t *testing.T) {
	for _, pl := range []Plan{{Rate429: 0.6, Rate5xx: 0.6}, {RateSlow: -0.1}, {RetryAfter: "1\r\nX: y"}} {
		if p, err := New("http://127.0.0.1:1", pl); err == nil {
			p.Close()
			t.Errorf("plan %+v accepted", pl)
		}
	}
	if _, err := New("https://127.0.0.1:1", Plan{}); err == nil {
		t.Error("https target accepted")
	}
}

func TestConcurrentRace(t *testing.T) {
	srv, _ := backend(t, 50_000)
	p := Start(t, srv.URL, Plan{Seed: 9, Rate429: 0.1, Rate5xx: 0.1, RateReset: 0.2, RateSlow: 0.1, SlowFirstByte: time.Millisecond})
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			c := &http.Client{Timeout: 30 * time.Second}
			for i := range 20 {
				req, _ := http.NewRequest(http.MethodPut, p.URL("/echo"), bytes.NewReader(bytes.Repeat([]byte{byte(w)}, 1000*i)))
				if resp, err := c.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	for i := range 8 {
		if i == 4 {
			p.SetPlan(Plan{Seed: 10, RateReset: 0.5})
		}
		<-done
	}
	c := checkCounts(t, p)
	if c.Requests < 160 {
		t.Errorf("counts %+v, want at least 160 requests", c)
	}
}

// Against a real registry (distribution v3) behind its counting proxy.
func TestRegistry(t *testing.T) {
	r := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	target := "http://" + r.Host
	c := freshClient()

	content := make([]byte, 300_000)
	_, _ = rand.Read(content)
	dgst := registrytest.Digest(content)

	t.Run("PassThrough", func(t *testing.T) {
		r.Log.Reset()
		p := Start(t, target, Plan{Seed: 1})
		resp, body := mustDo(t, c, http.MethodPost, p.URL("/v2/fp/test/blobs/uploads/"), nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || (loc.Host != "" && loc.Host != p.Host) {
			t.Fatalf("Location %q does not point at the proxy %s (%v)", resp.Header.Get("Location"), p.Host, err)
		}
		loc = resp.Request.URL.ResolveReference(loc)
		q := loc.Query()
		q.Set("digest", dgst)
		loc.RawQuery = q.Encode()
		resp, body = mustDo(t, c, http.MethodPut, loc.String(), content)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s", resp.StatusCode, body)
		}
		resp, body = mustDo(t, c, http.MethodGet, p.URL("/v2/fp/test/blobs/"+dgst), nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
			t.Fatalf("GET: %d, %d bytes, equal %v", resp.StatusCode, len(body), bytes.Equal(body, content))
		}
		if got := checkCounts(t, p); got != (Counts{Requests: 3, Passed: 3}) {
			t.Errorf("counts %+v", got)
		}
		if n := len(r.Log.All()); n != 3 {
			t.Errorf("registry saw %d requests, want 3: %v", n, r.Log.All())
		}
		if !r.HasBlob(t, "fp/test", dgst) {
			t.Error("blob not in the registry")
		}
	})

	t.Run("TooMany", func(t *testing.T) {
		r.Log.Reset()
		p := Start(t, target, Plan{Seed: 1, Rate429: 1})
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			resp, _ := mustDo(t, c, m, p.URL("/v2/fp/test/blobs/"+dgst), nil)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("%s: %d", m, resp.StatusCode)
			}
		}
		resp, _ := mustDo(t, c, http.MethodPost, p.URL("/v2/fp/test/blobs/uploads/"), nil)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("POST upload: %d", resp.StatusCode)
		}
		if n := len(r.Log.All()); n != 0 {
			t.Errorf("registry saw %d requests: %v", n, r.Log.All())
		}
		if got := checkCounts(t, p); got != (Counts{Requests: 4, TooMany: 4}) {
			t.Errorf("counts %+v", got)
		}
	})

	t.Run("ResetResponse", func(t *testing.T) {
		r.Log.Reset()
		p := Start(t, target, Plan{Seed: seedFor(t, FaultResetResponse), RateReset: 1})
		resp, err := c.Get(p.URL("/v2/fp/test/blobs/" + dgst))
		if err != nil {
			t.Fatalf("want the headers, got %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !isReset(err) {
			t.Fatalf("status %d, read %d bytes, error %v: want a cut body", resp.StatusCode, len(b), err)
		}
		if !bytes.Equal(b, content[:len(b)]) || len(b) == 0 || len(b) >= len(content) {
			t.Errorf("read %d bytes, not a proper prefix", len(b))
		}
		t.Logf("read %d of %d bytes, then %v", len(b), len(content), err)
		if n := r.Log.Count(http.MethodGet, "/blobs/"); n != 1 {
			t.Errorf("registry saw %d GETs, want 1", n)
		}
	})

	t.Run("ResetRequest", func(t *testing.T) {
		r.Log.Reset()
		p := Start(t, target, Plan{Seed: seedFor(t, FaultResetRequest), RateReset: 1,
			Only: func(r *http.Request) bool { return r.Method == http.MethodPut }})
		resp, body := mustDo(t, c, http.MethodPost, p.URL("/v2/fp/reset/blobs/uploads/"), nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		big := make([]byte, 1<<20)
		q := loc.Query()
		q.Set("digest", registrytest.Digest(big))
		loc.RawQuery = q.Encode()
		resp, _, err := do(t, c, http.MethodPut, loc.String(), big)
		if err == nil {
			t.Fatalf("PUT of 1 MiB answered %d, want a transport error", resp.StatusCode)
		}
		t.Logf("PUT: %v", err)
		if n := r.Log.Count(http.MethodPut, ""); n != 0 {
			t.Errorf("registry saw %d PUTs", n)
		}
		if got := checkCounts(t, p); got != (Counts{Requests: 2, Passed: 1, ResetsRequest: 1}) {
			t.Errorf("counts %+v", got)
		}
	})
}
