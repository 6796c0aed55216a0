package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// repeatedTree pushes to repo:tag an index listing another index n times,
// which lists one image n times (the crafted 6.4 KB case for
// n=30). It returns the digests of the three manifests.
func repeatedTree(t *testing.T, host, repo, tag string, n int) (top, mid, img string) {
	t.Helper()
	cfg := putBlob(t, host, repo, []byte(`{"architecture":"amd64","os":"linux"}`))
	layer := putBlob(t, host, repo, []byte("one layer"))
	imgRaw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":37},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":9}]}`,
		oci.MediaOCIManifest, cfg, layer)
	img = putRaw(t, host, repo, oci.Digest([]byte(imgRaw)), oci.MediaOCIManifest, []byte(imgRaw))
	list := func(mt types.MediaType, d string, size int) string {
		entries := make([]string, n)
		for i := range entries {
			entries[i] = fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, d, size)
		}
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, oci.MediaOCIIndex, strings.Join(entries, ","))
	}
	midRaw := list(oci.MediaOCIManifest, img, len(imgRaw))
	mid = putRaw(t, host, repo, oci.Digest([]byte(midRaw)), oci.MediaOCIIndex, []byte(midRaw))
	topRaw := list(oci.MediaOCIIndex, mid, len(midRaw))
	top = putRaw(t, host, repo, tag, oci.MediaOCIIndex, []byte(topRaw))
	return top, mid, img
}

// A 30 × 30 repeated-children tree costs one read of each distinct
// manifest and blob, and one PUT of each manifest per destination — in a
// sync with and without a display, a plan and a verify (issue #21).
func TestRepeatedChildrenWalkedOnce(t *testing.T) {
	for _, display := range []bool{false, true} {
		t.Run(fmt.Sprintf("display=%v", display), func(t *testing.T) {
			src, dst := newFake(t, nil), newFake(t, nil)
			top, mid, img := repeatedTree(t, src.Host, "lib/tree", "1", 30)
			r := ruleFor(t, src.Host+"/lib/tree:1", dst.Host+"/mirror/tree")
			r.Destinations = append(r.Destinations, rules.Destination{Registry: dst.Host, Repository: "other/tree"})
			opt := Options{}
			if display {
				opt.OnProgress = func(Progress) {}
			}
			ctx := context.Background()
			e := newEngine(t, opt)
			jobs, _, err := e.Expand(ctx, []rules.Rule{r})
			if err != nil || len(jobs) != 2 {
				t.Fatalf("expand: %v %v", jobs, err)
			}

			plan := newEngine(t, Options{DryRun: true}).Sync(ctx, jobs, nil)
			if plan.Summary.WouldCopy != 2 {
				t.Fatalf("plan: %+v %v", plan.Summary, plan.Jobs)
			}
			if n := src.count(http.MethodGet, "/manifests/"); n != 3 {
				t.Errorf("plan read %d manifests, want 3 (one per distinct digest)", n)
			}

			res := e.Sync(ctx, jobs, nil)
			if res.Summary.Copied != 2 {
				t.Fatalf("sync: %+v %v", res.Summary, res.Jobs)
			}
			if n := src.count(http.MethodGet, "/manifests/"); n != 6 {
				t.Errorf("plan and sync read %d manifests, want 6", n)
			}
			if n := src.count(http.MethodGet, "/blobs/"); n != 2 {
				t.Errorf("sync read %d blobs, want 2", n)
			}
			for _, d := range []string{top, mid, img} {
				if n := dst.count(http.MethodPut, "/manifests/"+d); n > 2 {
					t.Errorf("manifest %s PUT %d times, want at most once per destination", d, n)
				}
			}
			if n := dst.count(http.MethodPut, "/manifests/"); n != 6 {
				t.Errorf("%d manifest PUTs, want 6 (3 manifests × 2 destinations)", n)
			}
			for _, repo := range []string{"mirror/tree", "other/tree"} {
				d, err := dst.repo(t, e, repo).HeadManifest(ctx, "1")
				if err != nil || d.Digest != top {
					t.Errorf("%s:1 holds %v (%v), want %s", repo, d.Digest, err, top)
				}
			}

			before := len(dst.Front.Seen())
			v := newEngine(t, Options{}).Verify(ctx, jobs, VerifyOptions{})
			for _, r := range v {
				if !r.OK() {
					t.Errorf("verify %s: %v", r.Job.Destination, r.Problems)
				}
			}
			if n := len(dst.Front.Seen()) - before; n > 1+2*(1+3+2) {
				t.Errorf("verify sent %d requests, want at most 13 (ping; per destination: HEAD, 3 manifests, 2 blobs)", n)
			}
		})
	}
}

// An image whose tree holds more distinct manifests than maxManifests fails
// for good, with a message saying so, without reading them all.
func TestManifestBound(t *testing.T) {
	var idx []byte // served as lib/wide:1 (a registry would refuse it: its children are missing)
	src := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if p := r.URL.Path; !strings.HasSuffix(p, "/lib/wide/manifests/1") && !strings.HasSuffix(p, "/lib/wide/manifests/"+oci.Digest(idx)) {
			return false
		}
		w.Header().Set("Content-Type", string(oci.MediaOCIIndex))
		w.Header().Set("Docker-Content-Digest", oci.Digest(idx))
		w.Header().Set("Content-Length", fmt.Sprint(len(idx)))
		if r.Method == http.MethodGet {
			w.Write(idx)
		}
		return true
	})
	dst := newFake(t, nil)
	var entries []string
	for i := range maxManifests + 5 {
		raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[],"annotations":{"n":"%d"}}`, oci.MediaOCIIndex, i)
		d := oci.Digest([]byte(raw))
		entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, oci.MediaOCIIndex, d, len(raw)))
	}
	idx, _ = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaOCIIndex, "manifests": json.RawMessage("[" + strings.Join(entries, ",") + "]")})
	r := ruleFor(t, src.Host+"/lib/wide:1", dst.Host+"/mirror/wide")
	e := newEngine(t, Options{Concurrency: 1})
	ctx := context.Background()
	jobs, _, _ := e.Expand(ctx, []rules.Rule{r})
	res := e.Sync(ctx, jobs, nil)
	if res.Summary.Failed != 1 || !client.IsPermanent(res.Jobs[0].Err) {
		t.Fatalf("sync: %+v %v", res.Summary, res.Jobs)
	}
	if err := res.Jobs[0].Err.Error(); !strings.Contains(err, "more than 1000 distinct manifests") {
		t.Errorf("error %q", err)
	}
	if n := src.count(http.MethodGet, "/manifests/sha256:"); n > 1 {
		t.Errorf("%d child manifests read past the bound", n)
	}
}

// A walk stops when its context ends, also while children are under way.
func TestWalkCancelled(t *testing.T) {
	src := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			<-r.Context().Done() // a child read that never answers
			return true
		}
		return false
	})
	top, _, _ := repeatedTree(t, src.Host, "lib/tree", "1", 3)
	e := newEngine(t, Options{})
	repo := src.repo(t, e, "lib/tree")
	raw, d, err := repo.GetManifest(context.Background(), "1")
	if err != nil || d.Digest != top {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(ErrInterrupted) })
	failed := make(chan error, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		walkTree(ctx, &source{repo: repo}, manifest{digest: top, mediaType: d.MediaType, raw: raw}, walker{
			parallel: true,
			visit:    func(context.Context, manifest, []oci.Blob) { t.Error("visited after cancel") },
			fail:     func(_ string, err error) { failed <- err },
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the walk did not stop")
	}
	if len(failed) == 0 {
		t.Error("no failure reported")
	}
}

// A verify cut short by Ctrl-C reports the check as not done and marks
// nothing in the ledger for repair (a cancelled request is no damage).
func TestVerifyStoppedMarksNothing(t *testing.T) {
	var block atomic.Bool
	stop := make(chan struct{})
	var once sync.Once
	src := newFake(t, nil)
	dst := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if block.Load() && r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
			once.Do(func() { close(stop) })
			<-r.Context().Done()
			return true
		}
		return false
	})
	pushIndex(t, src.Host+"/ns/app:v1")
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	j := job(src.Host, "ns/app", dst.Host, "mirror/app", "v1")
	if res := newEngine(t, Options{Ledger: l}).Sync(context.Background(), []rules.Job{j}, nil); res.Summary.Copied != 1 {
		t.Fatalf("seeding: %+v", res.Summary)
	}
	block.Store(true)
	done := make(chan []VerifyResult)
	go func() {
		done <- newEngine(t, Options{Ledger: l, Stop: stop}).Verify(context.Background(), []rules.Job{j}, VerifyOptions{})
	}()
	var out []VerifyResult
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("verify did not stop")
	}
	if !slices.Equal(kinds(out[0]), []string{ProblemError}) || !strings.Contains(out[0].Problems[0].Detail, "not checked") {
		t.Errorf("stopped verify: %+v", out[0])
	}
	if l.NeedsRepair(ledgerKey(j, "")) {
		t.Error("a stopped check marked the destination for repair")
	}
}
