package engine

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// memRegistry is go-containerregistry's in-memory registry with a request
// counter: fast unit tests only; the integration tests use real servers.
func memRegistry(t *testing.T) (host string, puts *atomic.Int64) {
	t.Helper()
	puts = &atomic.Int64{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPatch {
			puts.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), puts
}

func pushIndex(t *testing.T, ref string) v1.Hash {
	t.Helper()
	idx, err := random.Index(512, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	// give the children platforms
	m, _ := idx.IndexManifest()
	var adds []mutate.IndexAddendum
	for i, d := range m.Manifests {
		img, _ := idx.Image(d.Digest)
		arch := []string{"amd64", "arm64", "s390x"}[i]
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx2 := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx2); err != nil {
		t.Fatal(err)
	}
	d, _ := idx2.Digest()
	return d
}

func newEngine(t *testing.T, opt Options) *Engine {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c := client.New(&credentials.Chain{}, client.WithRetryPolicy(client.RetryPolicy{Attempts: 2}))
	if opt.Concurrency == 0 {
		opt.Concurrency = 4
	}
	return New(c, opt)
}

func ruleFor(t *testing.T, src, dst string) rules.Rule {
	t.Helper()
	s, err := rules.ParseSource(src)
	if err != nil {
		t.Fatal(err)
	}
	d, err := rules.ParseDestination(dst)
	if err != nil {
		t.Fatal(err)
	}
	return rules.Rule{File: "test.yaml", Key: src, Source: s, Destinations: []rules.Destination{d}}
}

func TestSyncIndexInMemory(t *testing.T) {
	src, _ := memRegistry(t)
	dst, dstPuts := memRegistry(t)
	want := pushIndex(t, src+"/ns/app:v1")
	ctx := context.Background()

	r := ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app")
	e := newEngine(t, Options{})
	jobs, failed, err := e.Expand(ctx, []rules.Rule{r})
	if err != nil || len(failed) != 0 || len(jobs) != 1 {
		t.Fatalf("expand: %v %v %v", jobs, failed, err)
	}
	res := e.Sync(ctx, jobs, nil)
	if res.Summary.Copied != 1 || res.Jobs[0].Digest != want.String() {
		t.Fatalf("first sync: %+v err=%v", res.Summary, res.Jobs[0].Err)
	}
	got, err := remote.Head(mustRef(t, dst+"/mirror/app:v1"))
	if err != nil || got.Digest != want {
		t.Fatalf("destination digest %v, want %v (%v)", got, want, err)
	}
	before := dstPuts.Load()
	res = newEngine(t, Options{}).Sync(ctx, jobs, nil)
	if res.Summary.Skipped != 1 || dstPuts.Load() != before {
		t.Fatalf("second sync: %+v, %d new PUTs", res.Summary, dstPuts.Load()-before)
	}
}

func TestSyncPlatformFilterInMemory(t *testing.T) {
	src, _ := memRegistry(t)
	dst, _ := memRegistry(t)
	orig := pushIndex(t, src+"/ns/app:v1")
	ctx := context.Background()
	f, _ := ParseFilter(nil, []string{"arm64"})
	e := newEngine(t, Options{Filter: f})
	jobs, _, err := e.Expand(ctx, []rules.Rule{ruleFor(t, src+"/ns/app:v1", dst+"/ns/app")})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(ctx, jobs, nil)
	if res.Summary.Copied != 1 {
		t.Fatalf("%+v %v", res.Summary, res.Jobs[0].Err)
	}
	idx, err := remote.Index(mustRef(t, dst+"/ns/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	d, _ := idx.Digest()
	if len(m.Manifests) != 1 || m.Manifests[0].Platform.Architecture != "arm64" || d == orig || d.String() != res.Jobs[0].Digest {
		t.Fatalf("filtered index: %d children, digest %v (orig %v, reported %s)", len(m.Manifests), d, orig, res.Jobs[0].Digest)
	}
	// nothing matches → filtered
	f, _ = ParseFilter([]string{"windows"}, nil)
	res = newEngine(t, Options{Filter: f}).Sync(ctx, jobs, nil)
	if res.Summary.Filtered != 1 {
		t.Fatalf("%+v", res.Summary)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type panicKeychain struct{}

func (panicKeychain) Resolve(context.Context, string, string) (credentials.Access, error) {
	panic("boom")
}

func TestPanicIsAFailedJob(t *testing.T) {
	e := New(client.New(panicKeychain{}), Options{Concurrency: 2, Retries: 3})
	jobs := []rules.Job{
		{Source: rules.Ref{Registry: "127.0.0.1:1", Repository: "a/b", Tag: "1"}, Destination: rules.Ref{Registry: "127.0.0.1:2", Repository: "a/b"}},
		{Source: rules.Ref{Registry: "127.0.0.1:1", Repository: "a/c", Tag: "1"}, Destination: rules.Ref{Registry: "127.0.0.1:2", Repository: "a/c"}},
	}
	res := e.Sync(context.Background(), jobs, nil)
	if res.Summary.Failed != 2 || len(res.Jobs) != 2 {
		t.Fatalf("%+v", res.Summary)
	}
	for _, r := range res.Jobs {
		if r.Action != Failed || !strings.Contains(r.Err.Error(), "internal error") || !strings.Contains(r.Err.Error(), "boom") || r.Attempts != 1 {
			t.Fatalf("%+v", r)
		}
	}
}

// flaky is an in-memory registry that answers the next *failNext manifest
// requests with 503.
func flaky(t *testing.T) (host string, failNext *atomic.Int64) {
	t.Helper()
	failNext = &atomic.Int64{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && failNext.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), failNext
}

func TestJobRetryQueue(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		retries    int
		wantAction Action
	}{{retries: 2, wantAction: Copied}, {retries: 1, wantAction: Failed}} {
		flakySrc, failNext := flaky(t)
		dst, _ := memRegistry(t)
		want := pushIndex(t, flakySrc+"/ns/app:v1")
		// Fail 4 source HEADs: 2 per attempt (the transport tries twice), so
		// the job needs its third attempt.
		failNext.Store(4)
		e := newEngine(t, Options{Retries: tc.retries})
		jobs, _, err := e.Expand(ctx, []rules.Rule{ruleFor(t, flakySrc+"/ns/app:v1", dst+"/ns/app")})
		if err != nil {
			t.Fatal(err)
		}
		res := e.Sync(ctx, jobs, nil)
		r := res.Jobs[0]
		if r.Action != tc.wantAction || r.Attempts != tc.retries+1 {
			t.Fatalf("retries=%d: action %s after %d attempts (%v)", tc.retries, r.Action, r.Attempts, r.Err)
		}
		if tc.wantAction == Copied {
			got, err := remote.Head(mustRef(t, dst+"/ns/app:v1"))
			if err != nil || got.Digest != want {
				t.Fatalf("destination %v %v, want %v", got, err, want)
			}
		} else if client.IsPermanent(r.Err) || !strings.Contains(r.Err.Error(), "503") {
			t.Fatalf("want the last transient error kept, got %v", r.Err)
		}
	}
}

func TestSchema1IsUnsupported(t *testing.T) {
	src, _ := memRegistry(t)
	dst, dstPuts := memRegistry(t)
	raw := `{"schemaVersion":1,"name":"ns/old","tag":"v1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[{"header":{},"signature":"x","protected":"e30"}]}`
	req, _ := http.NewRequest(http.MethodPut, "http://"+src+"/v2/ns/old/manifests/v1", strings.NewReader(raw))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("seeding schema 1: %v %v", resp, err)
	}
	resp.Body.Close()
	e := newEngine(t, Options{Retries: 2})
	jobs, _, err := e.Expand(context.Background(), []rules.Rule{ruleFor(t, src+"/ns/old:v1", dst+"/ns/old")})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(context.Background(), jobs, nil)
	r := res.Jobs[0]
	if r.Action != Failed || !strings.Contains(r.Err.Error(), "schema 1") || r.Attempts != 1 || dstPuts.Load() != 0 {
		t.Fatalf("%s after %d attempts: %v (%d PUTs)", r.Action, r.Attempts, r.Err, dstPuts.Load())
	}
}
