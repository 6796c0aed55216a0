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

// tagLists counts the tag lists a front was asked for.
func tagLists(f *faultproxy.Front) (n int) {
	for _, e := range f.Seen() {
		if e.Method == http.MethodGet && strings.HasSuffix(e.Path, "/tags/list") {
			n++
		}
	}
	return n
}

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

// A destination whose tag is missing gets each blob with one POST (the
// mount check) and one PUT, no HEAD, when its repository was missing (one
// tag list asks, per repository) or its registry's mounts were seen
// answering for present blobs (the probe after the first upload). In a
// repository that exists, on a registry that ignores mounts (the probe
// finds it out), blobs get HEADs: nothing it holds is sent again.
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
			// the repository is missing: every blob POST, PUT; the probe
			// after the first: one POST (201).
			if head != 0 || post != blobs+1 || put != blobs || del != 0 {
				t.Errorf("destination blob requests: %d HEAD, %d POST, %d PUT, %d DELETE; want 0, %d, %d, 0", head, post, put, del, blobs+1, blobs)
			}
			if n := tagLists(front); n != 1 {
				t.Errorf("%d tag lists asked, want 1 (is the repository there?)", n)
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
			// the repository is missing: every blob POST, PUT; the probe:
			// a POST whose session is cancelled.
			if head != 0 || post != blobs+1 || put != blobs || del != 1 {
				t.Errorf("destination blob requests: %d HEAD, %d POST, %d PUT, %d DELETE; want 0, %d, %d, 1", head, post, put, del, blobs+1, blobs)
			}

			// The repository exists now and holds every blob: a new tag
			// of the same image asks for each (HEAD) and sends none.
			if r := runCLI(t, nil, src.Host+"/lib/big:v1", front.Host+"/ignored/big:v2", "--proc", "1", "--no-ledger"); r.code != 0 {
				t.Fatalf("sync: exit %d", r.code)
			}
			assertDigest(t, dst, "ignored/big", "v2", want)
			head2, post2, put2, del2 := blobRequests(front)
			if head2-head != blobs || post2 != post || put2 != put || del2 != del {
				t.Errorf("existing repository: %d HEAD, %d POST, %d PUT, %d DELETE more; want %d, 0, 0, 0", head2-head, post2-post, put2-put, del2-del, blobs)
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
