package main

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// blobRequests counts what a destination front saw on /blobs/ by method.
func blobRequests(f *faultproxy.Front) (head, post, put, del int) {
	for _, e := range f.Seen() {
		if !strings.Contains(e.Path, "/blobs/") {
			continue
		}
		switch e.Method {
		case http.MethodHead:
			head++
		case http.MethodPost:
			post++
		case http.MethodPut:
			put++
		case http.MethodDelete:
			del++
		}
	}
	return
}

// On a registry whose mounts answer for present blobs, a destination whose
// tag is missing gets each blob with one POST (the mount check) and one
// PUT: only the blobs copied before the run learned that (one here: --proc
// 1 copies them one by one) get a HEAD. A registry that ignores mounts is
// found out by the same probe and gets HEADs, so nothing it holds is sent
// again.
func TestOnePOSTPerBlob(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		const layers = 8
		want, _ := src.PushRandomImage(t, "lib/big", "v1", linuxAmd64, layers, 4096, true, 77)
		blobs := layers + 1 // and the config

		t.Run("mounts answer", func(t *testing.T) {
			front := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
				forward.ServeHTTP(w, r)
			})
			if r := runCLI(t, nil, src.Host+"/lib/big:v1", front.Host+"/mirror/big:v1", "--proc", "1", "--no-ledger"); r.code != 0 {
				t.Fatalf("sync: exit %d", r.code)
			}
			assertDigest(t, dst, "mirror/big", "v1", want)
			head, post, put, del := blobRequests(front)
			// the first blob: HEAD, POST, PUT; the probe: one POST (201);
			// every other blob: POST, PUT.
			if head != 1 || post != blobs+1 || put != blobs || del != 0 {
				t.Errorf("destination blob requests: %d HEAD, %d POST, %d PUT, %d DELETE; want 1, %d, %d, 0", head, post, put, del, blobs+1, blobs)
			}
			for d, n := range uploadsPerDigest(dst) {
				if n != 1 {
					t.Errorf("blob %s uploaded %d times", d, n)
				}
			}
		})

		t.Run("mounts ignored", func(t *testing.T) {
			// The front drops mount= and from=: the registry opens an
			// upload session for every POST, as registries that do not
			// mount do, even for a blob it holds.
			front := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
				if r.Method == http.MethodPost {
					q := r.URL.Query()
					q.Del("mount")
					q.Del("from")
					r.URL.RawQuery = q.Encode()
				}
				forward.ServeHTTP(w, r)
			})
			dst.Log.Reset()
			if r := runCLI(t, nil, src.Host+"/lib/big:v1", front.Host+"/ignored/big:v1", "--proc", "1", "--no-ledger"); r.code != 0 {
				t.Fatalf("sync: exit %d", r.code)
			}
			assertDigest(t, dst, "ignored/big", "v1", want)
			head, post, put, del := blobRequests(front)
			// every blob: HEAD, POST, PUT; the probe: a POST whose session
			// is cancelled.
			if head != blobs || post != blobs+1 || put != blobs || del != 1 {
				t.Errorf("destination blob requests: %d HEAD, %d POST, %d PUT, %d DELETE; want %d, %d, %d, 1", head, post, put, del, blobs, blobs+1, blobs)
			}
		})
	})
}

// An index copied to a destination whose tag is missing gets its children
// PUT without a HEAD each; one whose tag holds another digest has them
// asked first (most are likely there).
func TestIndexChildrenWithoutHEAD(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		platforms := []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "arm", Variant: "v7"}}
		idx, _, children := src.PushIndex(t, "lib/multi", "v1", platforms, true, 41)
		idx2, _, children2 := src.PushIndex(t, "lib/multi", "v2", platforms, true, 42)

		dst.Log.Reset()
		if r := runCLI(t, nil, src.Host+"/lib/multi:v1", dst.Host+"/mirror/multi:v1", "--no-ledger"); r.code != 0 {
			t.Fatalf("sync: exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/multi", "v1", idx)
		for _, c := range children {
			if !dst.HasManifest(t, "mirror/multi", c) {
				t.Errorf("child %s missing at the destination", c)
			}
		}
		if n := dst.Log.Count(http.MethodHead, "/manifests/"); n != 1 {
			t.Errorf("fresh destination: %d manifest HEADs, want 1 (the tag)", n)
		}

		// The tag now moves to another index: its children are asked.
		dst.Log.Reset()
		if r := runCLI(t, nil, src.Host+"/lib/multi:v2", dst.Host+"/mirror/multi:v1", "--no-ledger"); r.code != 0 {
			t.Fatalf("update: exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/multi", "v1", idx2)
		if n := dst.Log.Count(http.MethodHead, "/manifests/"); n != 1+len(children2) {
			t.Errorf("updated destination: %d manifest HEADs, want %d (the tag and each child)", n, 1+len(children2))
		}
	})
}

// A destination tag's HEAD goes out with the source's HEAD, not after its
// answer: the source here answers its manifest HEAD only once the
// destination has been asked (or after 10 s, which fails the test).
func TestDestinationAskedWithTheSource(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		want, _ := src.PushRandomImage(t, "lib/app", "v1", linuxAmd64, 1, 1024, true, 5)
		asked := make(chan struct{})
		var once atomic.Bool
		dstFront := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/manifests/v1") && once.CompareAndSwap(false, true) {
				close(asked)
			}
			forward.ServeHTTP(w, r)
		})
		var early atomic.Bool
		srcFront := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/manifests/v1") {
				select {
				case <-asked:
					early.Store(true)
				case <-time.After(10 * time.Second):
				}
			}
			forward.ServeHTTP(w, r)
		})
		if r := runCLI(t, nil, srcFront.Host+"/lib/app:v1", dstFront.Host+"/mirror/app:v1", "--no-ledger"); r.code != 0 {
			t.Fatalf("sync: exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/app", "v1", want)
		if !early.Load() {
			t.Error("the destination tag was not asked while the source's HEAD was unanswered")
		}
		if n := dstFront.Count(http.MethodHead, "/manifests/"); n != 1 {
			t.Errorf("%d destination manifest HEADs, want 1", n)
		}
	})
}
