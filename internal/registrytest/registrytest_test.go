package registrytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Under -short, Start skips the test before starting anything.
func TestStartSkipsUnderShort(t *testing.T) {
	if !testing.Short() {
		t.Skip("checks the -short behaviour")
	}
	rec := &skipRecorder{TB: t}
	done := make(chan *Registry, 1)
	go func() {
		defer close(done)
		done <- Start(rec, Distribution3, Options{})
	}()
	if r, ok := <-done; ok || r != nil || !rec.skipped {
		t.Fatalf("Start under -short: returned %v, skipped %v", r, rec.skipped)
	}
}

// skipRecorder records a Skip and ends the goroutine, as testing.T does.
type skipRecorder struct {
	testing.TB
	skipped bool
}

func (r *skipRecorder) Skip(args ...any) { r.skipped = true; runtime.Goexit() }

var testPlatforms = []Platform{
	{OS: "linux", Arch: "amd64"},
	{OS: "linux", Arch: "arm", Variant: "v7"},
	{OS: "windows", Arch: "amd64", OSVersion: "10.0.17763.1234"},
}

func TestIndexRoundTrip(t *testing.T) {
	ForEachKind(t, Options{}, func(t *testing.T, r *Registry) {
		for _, oci := range []bool{true, false} {
			name := map[bool]string{true: "oci", false: "docker"}[oci]
			repo := "rt/" + name
			wantMT := map[bool]string{true: MediaTypeOCIIndex, false: MediaTypeDockerManifestList}[oci]

			dgst, raw, children := r.PushIndex(t, repo, "multi", testPlatforms, oci, 42)
			if len(children) != len(testPlatforms) {
				t.Fatalf("%s: %d children, want %d", name, len(children), len(testPlatforms))
			}
			if !json.Valid(raw) || !bytes.Contains(raw, []byte("\t")) || raw[len(raw)-1] != '\n' {
				t.Fatalf("%s: index bytes not as specified:\n%s", name, raw)
			}
			if oci && !bytes.Contains(raw, []byte(`"artifactType"`)) {
				t.Fatalf("oci index lacks artifactType:\n%s", raw)
			}
			for _, ref := range []string{"multi", dgst} {
				got, mt, gotDgst := r.Manifest(t, repo, ref)
				if !bytes.Equal(got, raw) {
					t.Errorf("%s: GET %s returned different bytes:\n%s\nwant:\n%s", name, ref, got, raw)
				}
				if gotDgst != dgst || Digest(got) != dgst {
					t.Errorf("%s: GET %s digest %s (bytes %s), want %s", name, ref, gotDgst, Digest(got), dgst)
				}
				if mt != wantMT {
					t.Errorf("%s: GET %s media type %q, want %q", name, ref, mt, wantMT)
				}
			}
			for _, c := range children {
				if _, _, d := r.Manifest(t, repo, c); d != c {
					t.Errorf("%s: child %s has digest %s", name, c, d)
				}
			}
			// Deterministic: pushing again with the same seed gives the same index.
			if again, _, _ := r.PushIndex(t, repo, "again", testPlatforms, oci, 42); again != dgst {
				t.Errorf("%s: same seed gave index %s, then %s", name, dgst, again)
			}
			if tags := r.Tags(t, repo); !slices.Equal(tags, []string{"again", "multi"}) {
				t.Errorf("%s: tags %v", name, tags)
			}
		}
		if n := len(r.Log.All()); n != 0 {
			t.Errorf("seeding through Direct was counted by the proxy: %v", r.Log.All())
		}
	})
}

func TestProxyCountsOnlyProxyTraffic(t *testing.T) {
	ForEachKind(t, Options{}, func(t *testing.T, r *Registry) {
		dgst, raw := r.PushRandomImage(t, "count/me", "v1", Platform{OS: "linux", Arch: "amd64"}, 2, 2048, false, 7)
		if d2, raw2 := r.PushRandomImage(t, "count/me", "v1b", Platform{OS: "linux", Arch: "amd64"}, 2, 2048, false, 7); d2 != dgst || !bytes.Equal(raw2, raw) {
			t.Fatalf("PushRandomImage not deterministic: %s vs %s", dgst, d2)
		}
		_, _, _ = r.Manifest(t, "count/me", "v1") // direct: not counted
		if n := len(r.Log.All()); n != 0 {
			t.Fatalf("direct traffic counted: %v", r.Log.All())
		}

		c := r.Client()
		req, _ := http.NewRequest(http.MethodHead, r.URL("/v2/count/me/manifests/v1"), nil)
		req.Header.Set("Accept", AcceptManifests)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != dgst {
			t.Fatalf("HEAD via proxy: %d %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
		}
		if got := r.Log.Count("HEAD", `/manifests/`); got != 1 {
			t.Errorf("Count(HEAD, /manifests/) = %d, want 1; log %v", got, r.Log.All())
		}
		if got := r.Log.Count("GET", `/manifests/`); got != 0 {
			t.Errorf("Count(GET, /manifests/) = %d, want 0", got)
		}
		want := []Request{{Method: "HEAD", Path: "/v2/count/me/manifests/v1", Status: 200}}
		if got := r.Log.All(); !slices.Equal(got, want) {
			t.Errorf("log = %v, want %v", got, want)
		}

		// Upload Location must point back at the proxy (Host header kept).
		resp, err = c.Post(r.URL("/v2/count/me/blobs/uploads/"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusAccepted || err != nil || loc.Host != r.Host {
			t.Errorf("POST upload via proxy: %d Location %q (host %q, want %q)", resp.StatusCode, resp.Header.Get("Location"), loc.Host, r.Host)
		}
		if got := r.Log.Count("POST", `/blobs/uploads/$`); got != 1 {
			t.Errorf("Count(POST) = %d", got)
		}
		// A miss is recorded with its status, query included.
		resp, err = c.Get(r.URL("/v2/count/me/tags/list?n=1"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		all := r.Log.All()
		if last := all[len(all)-1]; last.RawQuery != "n=1" || last.Status != 200 || last.Path != "/v2/count/me/tags/list" {
			t.Errorf("last request recorded as %v", last)
		}
		r.Log.Reset()
		if n := r.Log.Count("", "."); n != 0 {
			t.Errorf("after Reset: %d", n)
		}

		// A larger blob streams through the proxy unchanged.
		big := make([]byte, 3<<20)
		_, _ = newRand(99).Read(big)
		bigDigest := r.PushBlob(t, "count/me", big)
		resp, err = c.Get(r.URL("/v2/count/me/blobs/" + bigDigest))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, big) || r.Log.Count("GET", `/blobs/sha256:`) != 1 {
			t.Fatalf("GET big blob via proxy: %v, %d bytes", err, len(got))
		}
		r.Log.Reset()

		// Blob and manifest helpers.
		blob := r.PushBlob(t, "count/me", []byte("hello"))
		if !r.HasBlob(t, "count/me", blob) {
			t.Fatal("HasBlob after PushBlob = false")
		}
		r.DeleteBlob(t, "count/me", blob)
		if r.HasBlob(t, "count/me", blob) {
			t.Fatal("HasBlob after DeleteBlob = true")
		}
		r.DeleteManifest(t, "count/me", dgst)
		if tags := r.Tags(t, "count/me"); len(tags) != 0 {
			t.Errorf("tags after deleting the manifest: %v", tags)
		}
		if tags := r.Tags(t, "no/such/repo"); tags != nil {
			t.Errorf("tags of unknown repo: %v", tags)
		}
		if n := len(r.Log.All()); n != 0 {
			t.Errorf("seeding helpers were counted: %v", r.Log.All())
		}
	})
}

func TestHtpasswdTLS(t *testing.T) {
	opt := Options{Htpasswd: map[string]string{"alice": "s3cret", "bob": "hunter2"}, TLS: true}
	ForEachKind(t, opt, func(t *testing.T, r *Registry) {
		if len(r.CAPEM) == 0 || r.Scheme() != "https" {
			t.Fatal("no CA PEM / not https")
		}
		c := r.Client()
		resp, err := c.Get(r.URL("/v2/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous GET /v2/: %d, want 401", resp.StatusCode)
		}
		for user, pass := range opt.Htpasswd {
			req, _ := http.NewRequest(http.MethodGet, r.URL("/v2/"), nil)
			req.SetBasicAuth(user, pass)
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v2/ as %s: %d, want 200", user, resp.StatusCode)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, r.URL("/v2/"), nil)
		req.SetBasicAuth("alice", "wrong")
		if resp, err = c.Do(req); err != nil || resp.Body.Close() != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %v %v", resp, err)
		}

		// A client that does not trust the CA fails verification.
		untrusted := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
		_, err = untrusted.Get(r.URL("/v2/"))
		var verr *tls.CertificateVerificationError
		var uerr x509.UnknownAuthorityError
		if err == nil || !(errors.As(err, &verr) || errors.As(err, &uerr)) {
			t.Fatalf("untrusted client: err = %v, want x509 verification error", err)
		}
		t.Logf("untrusted client: %v", err)

		// Seeding helpers authenticate and trust the CA on Direct.
		d, raw := r.PushRandomImage(t, "secure/img", "latest", Platform{OS: "linux", Arch: "arm64", Variant: "v8"}, 1, 100, true, 1)
		got, mt, gd := r.Manifest(t, "secure/img", "latest")
		if gd != d || !bytes.Equal(got, raw) || mt != MediaTypeOCIManifest {
			t.Fatalf("manifest round trip: %s %s", gd, mt)
		}

		want := []Request{
			{Method: "GET", Path: "/v2/", Status: 401},
			{Method: "GET", Path: "/v2/", Status: 200},
			{Method: "GET", Path: "/v2/", Status: 200},
			{Method: "GET", Path: "/v2/", Status: 401},
		}
		if got := r.Log.All(); !slices.Equal(got, want) {
			t.Errorf("log = %v, want %v", got, want)
		}
	})
}

// The proxy alone, against a fake backend: Host kept, redirects and
// streamed bodies passed through unchanged, statuses recorded.
func TestProxyPassThrough(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/redirect":
			w.Header().Set("X-Seen-Host", req.Host)
			http.Redirect(w, req, "https://elsewhere.example/blob?sig=1", http.StatusTemporaryRedirect)
		case "/stream":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-req.Context().Done() // never finishes: only a streaming proxy delivers the header
		}
	}))
	defer backend.Close()
	r := &Registry{Direct: backend.Listener.Addr().String(), Log: &RequestLog{}}
	front := httptest.NewServer(newProxy(r, log.New(io.Discard, "", 0)))
	defer front.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := c.Get(front.URL + "/redirect?x=y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "https://elsewhere.example/blob?sig=1" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got, want := resp.Header.Get("X-Seen-Host"), front.Listener.Addr().String(); got != want {
		t.Errorf("backend saw Host %q, want %q", got, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/stream", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("streaming response header not delivered: %v", err)
	}
	cancel()
	resp.Body.Close()
	want := []Request{{Method: "GET", Path: "/redirect", RawQuery: "x=y", Status: 307}, {Method: "GET", Path: "/stream", Status: 200}}
	if got := r.Log.All(); !slices.Equal(got, want) {
		t.Errorf("log = %v, want %v", got, want)
	}
}

func TestTokenAuth(t *testing.T) {
	ForEachKind(t, Options{Token: &TokenAuth{Users: map[string]string{"robot": "pw-123456"}}}, func(t *testing.T, r *Registry) {
		d, _ := r.PushRandomImage(t, "ns/app", "1", Platform{OS: "linux", Arch: "amd64"}, 1, 100, true, 1)
		c := r.Client()
		resp, err := c.Get(r.URL("/v2/ns/app/manifests/1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), r.Host+"/token") {
			t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		req, _ := http.NewRequest(http.MethodGet, r.URL("/token?service=registrytest&scope=repository:ns/app:pull"), nil)
		req.SetBasicAuth("robot", "pw-123456")
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		req, _ = http.NewRequest(http.MethodHead, r.URL("/v2/ns/app/manifests/1"), nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Accept", AcceptManifests)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d {
			t.Fatalf("with a token: %d %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
		}
		req, _ = http.NewRequest(http.MethodGet, r.URL("/token?service=registrytest&scope=repository:ns/app:pull"), nil)
		req.SetBasicAuth("robot", "wrong")
		resp, _ = c.Do(req)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
		if got := r.Tokens.All(); len(got) != 2 || got[0].User != "robot" || got[0].Scopes[0] != "repository:ns/app:pull" || got[1].Status != 401 {
			t.Fatalf("token log %+v", got)
		}
	})
}
