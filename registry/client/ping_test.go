package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/imagesync/imagesync/credentials"
)

// The scheme decision: HTTPS always first; plain HTTP only for insecure
// registries and loopback, never for a private address on its own.
// (Unit-tested only: no test sends traffic to a non-loopback address.)
func TestSchemes(t *testing.T) {
	for _, tc := range []struct {
		host     string
		insecure bool
		want     string
	}{
		{"registry.example.com", false, "https"},
		{"registry.example.com", true, "https,http"},
		{"10.1.2.3:5000", false, "https"},
		{"172.16.0.9:5000", false, "https"},
		{"192.168.1.20", false, "https"},
		{"192.168.1.20:5000", true, "https,http"},
		{"127.0.0.1:5000", false, "https,http"},
		{"127.8.9.1", false, "https,http"},
		{"localhost:5000", false, "https,http"},
		{"LOCALHOST", false, "https,http"},
		{"[::1]:5000", false, "https,http"},
		{"::1", false, "https,http"},
		{"[fd00::1]:5000", false, "https"},
		{"localhost.evil.example", false, "https"},
		{"127.0.0.1.nip.io", false, "https"},
	} {
		if got := strings.Join(Schemes(tc.host, tc.insecure), ","); got != tc.want {
			t.Errorf("Schemes(%q, insecure=%v) = %s, want %s", tc.host, tc.insecure, got, tc.want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	ch := pickChallenge([]string{`Negotiate, Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a\"b:pull"`})
	if ch.Scheme != "Bearer" || ch.Parameters["realm"] != "https://auth.example.com/token" || ch.Parameters["service"] != "registry.example.com" || ch.Parameters["scope"] != `repository:a"b:pull` {
		t.Fatalf("got %+v", ch)
	}
	if ch := pickChallenge([]string{`Basic realm="Registry Realm"`}); ch.Scheme != "Basic" || ch.Parameters["realm"] != "Registry Realm" {
		t.Fatalf("got %+v", ch)
	}
	if ch := pickChallenge(nil); ch.Scheme != "basic" {
		t.Fatalf("a 401 without a challenge: %+v", ch)
	}
}

// An endless /v2/ body does not hang the ping: at most 64 KiB is read.
func TestPingBodyIsCapped(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
			w.Header().Set("Content-Type", string(MediaOCIManifest))
			return
		}
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for sent.Load() < 1<<30 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries))
	repo, _ := c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)
	if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n > 64<<20 {
		t.Fatalf("the server could write %d bytes of /v2/ body: the ping read far past its cap", n)
	}
}

// pingCounter is a registry counting its pings; it answers them 503 while
// down is set, and every manifest HEAD with a digest.
func pingCounter(t *testing.T, down *atomic.Bool) (repo *Repo, pings *atomic.Int32) {
	t.Helper()
	pings = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		w.Header().Set("Content-Type", string(MediaOCIManifest))
	}))
	t.Cleanup(srv.Close)
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries))
	repo, _ = c.Repo(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "ns/app", false)
	return repo, pings
}

// A failed ping is not kept: the next request pings again and succeeds.
func TestPingKeepsOnlySuccess(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	repo, pings := pingCounter(t, &down)
	if _, err := repo.HeadManifest(context.Background(), "v1"); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("while down: %v", err)
	}
	down.Store(false)
	before := pings.Load()
	if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
		t.Fatalf("once up: %v", err)
	}
	if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	if n := pings.Load() - before; n != 1 {
		t.Fatalf("%d pings after the registry came up, want 1 (a success is kept)", n)
	}
}

// Concurrent first requests share one ping.
func TestPingSharedByConcurrentRequests(t *testing.T) {
	repo, pings := pingCounter(t, &atomic.Bool{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := repo.HeadManifest(context.Background(), "v1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := pings.Load(); n != 1 {
		t.Fatalf("%d pings, want 1", n)
	}
}

func TestRedirectLoopIsPermanent(t *testing.T) {
	var n atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, _, err := repo.GetBlob(context.Background(), "sha256:"+strings.Repeat("a", 64))
	if !errors.Is(err, ErrRedirectLoop) || !IsPermanent(err) || IsTransientNetwork(err) {
		t.Fatalf("got %v, want a permanent redirect loop", err)
	}
	if got := n.Load(); got != maxRedirects {
		t.Fatalf("%d requests, want %d (no retry of a loop)", got, maxRedirects)
	}
}

func TestTagListBounds(t *testing.T) {
	defer func(p, n, b int) { maxTagPages, maxTags, maxTagBytes = p, n, b }(maxTagPages, maxTags, maxTagBytes)
	maxTagPages, maxTags, maxTagBytes = 50, 1000, 1<<20
	for _, tc := range []struct {
		name string
		page func(w http.ResponseWriter, r *http.Request, n int)
		want string
	}{
		{"same next page", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Link", `</v2/ns/app/tags/list?last=a&n=1>; rel="next"`)
			io.WriteString(w, `{"tags":["a"]}`)
		}, "repeats a page"},
		{"endless distinct pages", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/ns/app/tags/list?last=t%d&n=1>; rel="next"`, n))
			fmt.Fprintf(w, `{"tags":["t%d"]}`, n)
		}, "more than 50 pages"},
		{"too many tags", func(w http.ResponseWriter, r *http.Request, n int) {
			tags := make([]string, 1001)
			for i := range tags {
				tags[i] = fmt.Sprintf(`"t%d"`, i)
			}
			fmt.Fprintf(w, `{"tags":[%s]}`, strings.Join(tags, ","))
		}, "more than 1000 tags"},
		{"huge page", func(w http.ResponseWriter, r *http.Request, n int) {
			fmt.Fprintf(w, `{"tags":["%s"]}`, strings.Repeat("a", 2<<20))
		}, "more than 1048576 bytes"},
		{"next page elsewhere", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Link", `</v2/other/repo/tags/list?n=1>; rel="next"`)
			io.WriteString(w, `{"tags":["a"]}`)
		}, "leaves the repository"},
		{"next page on another host", func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Link", `<http://127.0.0.2:1/v2/ns/app/tags/list?n=1>; rel="next"`)
			io.WriteString(w, `{"tags":["a"]}`)
		}, "leaves the repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			c, host := server(t, func(w http.ResponseWriter, r *http.Request) { tc.page(w, r, int(n.Add(1))) })
			repo, _ := c.Repo(context.Background(), host, "ns/app", false)
			_, _, err := repo.Tags(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsPermanent(err) {
				t.Fatalf("got %v, want a permanent error with %q", err, tc.want)
			}
			if got := n.Load(); got > 51 {
				t.Fatalf("%d pages fetched", got)
			}
		})
	}
	t.Run("invalid tags apart", func(t *testing.T) {
		c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"tags":["v1","v1/../../../../victim/manifests/pwned","v1?x=y","v2"]}`)
		})
		repo, _ := c.Repo(context.Background(), host, "ns/app", false)
		tags, invalid, err := repo.Tags(context.Background())
		if err != nil || strings.Join(tags, ",") != "v1,v2" || len(invalid) != 2 {
			t.Fatalf("tags %q, invalid %q, %v", tags, invalid, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int32
		c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 3 {
				cancel()
			}
			w.Header().Set("Link", fmt.Sprintf(`</v2/ns/app/tags/list?last=t%d>; rel="next"`, n.Load()))
			io.WriteString(w, `{"tags":["a"]}`)
		})
		repo, _ := c.Repo(context.Background(), host, "ns/app", false)
		if _, _, err := repo.Tags(ctx); !errors.Is(err, context.Canceled) || n.Load() > 4 {
			t.Fatalf("got %v after %d pages", err, n.Load())
		}
	})
}

// An unreachable registry says what was tried, URL by URL, as crane does;
// on loopback both schemes, and the hint about plain HTTP only where it was
// not tried. A DNS name that does not exist is permanent: not retried.
func TestPingSaysWhatWasTried(t *testing.T) {
	l, err := netListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	c := New(&credentials.Chain{}, WithRetryPolicy(fastRetries))
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, err = repo.HeadManifest(context.Background(), "v1")
	want := fmt.Sprintf("registry %[1]s is not reachable: https://%[1]s/v2/: connection refused; http://%[1]s/v2/: connection refused", host)
	if err == nil || err.Error() != want {
		t.Errorf("closed loopback port:\n got %v\nwant %s", err, want)
	}
	if !IsTransientNetwork(err) || IsPermanent(err) {
		t.Error("a refused connection is worth another attempt later")
	}

	nx := &url.Error{Op: "Get", URL: "https://no-such.invalid/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "no-such.invalid", IsNotFound: true}}}
	perr := &pingError{tried: []schemeError{{url: "https://no-such.invalid/v2/", err: nx}}, httpsOnly: true}
	if got := perr.Error(); got != "https://no-such.invalid/v2/: no such host" {
		t.Errorf("no such host: %q", got)
	}
	if IsTransientNetwork(perr) || !IsPermanent(perr) {
		t.Error("a name that does not exist is retried")
	}
	refused := &pingError{tried: []schemeError{{url: "https://r.example/v2/", err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}}, httpsOnly: true}
	if got := refused.Error(); !strings.HasSuffix(got, ": connection refused (plain HTTP is tried only for loopback addresses and registries marked insecure: true)") {
		t.Errorf("https only: %q", got)
	}
}

func netListenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
