package engine

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/sync/ledger"
)

// ensureBlob, one destination at a time: what is there is left alone, what
// another job is uploading to the same registry is waited for and mounted
// from where it landed, and a failed upload is taken over.
func TestEnsureBlob(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("blob "), 20_000)

	t.Run("present", func(t *testing.T) {
		src, dst := newFake(t, nil), newFake(t, nil)
		b := src.blob("ns/src", content)
		dst.blob("mirror/app", content)
		e := newEngine(t, Options{})
		n, err := e.ensureBlob(ctx, src.repo(t, e, "ns/src"), b, dst.repo(t, e, "mirror/app"), false)
		if err != nil || n != 0 || len(dst.writes()) != 0 || dst.count(http.MethodHead, "/blobs/") != 1 {
			t.Fatalf("%d bytes, %v; destination requests %v", n, err, dst.Front.Seen())
		}
		if !e.blobs.has(dst.repo(t, e, "mirror/app"), b.Digest) {
			t.Error("the tracker did not learn the blob is there")
		}
	})

	t.Run("uploads", func(t *testing.T) {
		src, dst := newFake(t, nil), newFake(t, nil)
		b := src.blob("ns/src", content)
		e := newEngine(t, Options{})
		n, err := e.ensureBlob(ctx, src.repo(t, e, "ns/src"), b, dst.repo(t, e, "mirror/app"), false)
		if got, _ := dst.Blobs.get("mirror/app", b.Digest); err != nil || n != b.Size || !bytes.Equal(got, content) {
			t.Fatalf("%d bytes, %v; destination holds %d bytes", n, err, len(got))
		}
		// landed, it stays claimed: a later job of another repository
		// mounts from where it landed instead of uploading it again
		f, leading := e.blobs.claim(dst.repo(t, e, "other/app"), b.Digest)
		if leading {
			t.Fatal("a blob that landed was claimed to be uploaded again")
		}
		select {
		case <-f.done:
		default:
			t.Fatal("the landed flight is not done")
		}
		if f.err != nil || f.repo != "mirror/app" {
			t.Errorf("landed flight: repo %q, error %v", f.repo, f.err)
		}
	})

	t.Run("same registry mounts from the source", func(t *testing.T) {
		reg := newFake(t, nil)
		b := reg.blob("ns/src", content)
		e := newEngine(t, Options{})
		n, err := e.ensureBlob(ctx, reg.repo(t, e, "ns/src"), b, reg.repo(t, e, "mirror/app"), false)
		if got, _ := reg.Blobs.get("mirror/app", b.Digest); err != nil || n != 0 || !bytes.Equal(got, content) || e.mounted.Load() != 1 {
			t.Fatalf("%d bytes, %v, %d mounts; destination holds %d bytes", n, err, e.mounted.Load(), len(got))
		}
		if reg.count(http.MethodGet, "/blobs/") != 0 || reg.count(http.MethodPut, "/blobs/") != 0 {
			t.Errorf("a mount read or uploaded bytes: %v", reg.Front.Seen())
		}
	})

}

// Another job leads the upload to this registry: wait for it, then mount
// from where it landed, or take over when it failed.
func TestEnsureBlobWaitsForTheUploadInFlight(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("blob "), 20_000)
	for _, failed := range []bool{false, true} {
		name := map[bool]string{false: "waits and mounts", true: "takes over a failed upload"}[failed]
		t.Run(name, func(t *testing.T) {
			src, dst := newFake(t, nil), newFake(t, nil)
			b := src.blob("ns/src", content)
			e := newEngine(t, Options{})
			first := dst.repo(t, e, "first/app")
			f, leading := e.blobs.claim(first, b.Digest)
			if !leading {
				t.Fatal("no flight expected yet")
			}
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := e.ensureBlob(ctx, src.repo(t, e, "ns/src"), b, dst.repo(t, e, "second/app"), false)
				done <- result{n, err}
			}()
			select {
			case r := <-done:
				t.Fatalf("did not wait for the upload in flight: %d bytes, %v", r.n, r.err)
			case <-time.After(100 * time.Millisecond): // it waits: nothing to wait for but the flight
			}
			var landed error
			if failed {
				landed = errors.New("upload failed")
			} else {
				dst.blob("first/app", content)
			}
			e.blobs.land(first, b.Digest, f, landed)
			r := <-done
			got, _ := dst.Blobs.get("second/app", b.Digest)
			if r.err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%d bytes, %v; second/app holds %d bytes", r.n, r.err, len(got))
			}
			mounts := dst.count(http.MethodPost, "second/app/blobs/uploads")
			puts := dst.count(http.MethodPut, "second/app/blobs/uploads")
			if failed && (r.n != b.Size || puts != 1) {
				t.Errorf("took over with %d bytes and %d PUTs, want %d and 1", r.n, puts, b.Size)
			}
			if !failed && (r.n != 0 || puts != 0 || mounts != 1 || e.mounted.Load() != 1) {
				t.Errorf("%d bytes, %d PUTs, %d POSTs: want a mount from first/app alone", r.n, puts, mounts)
			}
		})
	}

}

func TestEnsureBlobFails(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("blob "), 20_000)
	t.Run("destination error", func(t *testing.T) {
		src := newFake(t, nil)
		dst := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
				w.WriteHeader(http.StatusForbidden)
				return true
			}
			return false
		})
		b := src.blob("ns/src", content)
		e := newEngine(t, Options{})
		if n, err := e.ensureBlob(ctx, src.repo(t, e, "ns/src"), b, dst.repo(t, e, "mirror/app"), false); err == nil || n != 0 || len(dst.writes()) != 0 {
			t.Fatalf("%d bytes, %v, writes %v", n, err, dst.writes())
		}
	})

	t.Run("interrupted while waiting", func(t *testing.T) {
		src, dst := newFake(t, nil), newFake(t, nil)
		b := src.blob("ns/src", content)
		e := newEngine(t, Options{})
		e.blobs.claim(dst.repo(t, e, "first/app"), b.Digest) // never lands
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := e.ensureBlob(ctx, src.repo(t, e, "ns/src"), b, dst.repo(t, e, "second/app"), false); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want the context's error", err)
		}
	})
}

// plan counts the bytes a sync would upload per destination: blobs the
// destination lacks and cannot mount, once per registry, and writes
// nothing — not to a registry, not to the ledger.
func TestPlanBlobs(t *testing.T) {
	ctx := context.Background()
	src, x, y := newFake(t, nil), newFake(t, nil), newFake(t, nil)
	config := src.blob("ns/src", []byte(`{"architecture":"amd64","os":"linux"}`))
	layer1 := src.blob("ns/src", bytes.Repeat([]byte{1}, 1000))
	layer2 := src.blob("ns/src", bytes.Repeat([]byte{2}, 5000))
	y.blob("mirror/app", bytes.Repeat([]byte{1}, 1000))   // layer1 is at Y already
	x.blob("other/holder", bytes.Repeat([]byte{2}, 5000)) // layer2 is in X, in another repository
	denied := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})

	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.RecordBlobs(x.Host+"/other/holder", []string{layer2.Digest}); err != nil { // known from an earlier run
		t.Fatal(err)
	}
	e := newEngine(t, Options{DryRun: true, Ledger: l})
	mk := func(f *fake, repo string) *target { return &target{repo: f.repo(t, e, repo)} }
	a, b, c, d := mk(x, "mirror/a"), mk(x, "mirror/b"), mk(y, "mirror/app"), mk(denied, "mirror/app")
	e.planBlobs(ctx, src.repo(t, e, "ns/src"), []oci.Blob{config, layer1, layer2, layer1}, []*target{a, b, c, d})

	for _, tc := range []struct {
		name string
		t    *target
		want int64
	}{
		{"X, first repository: config and layer1 (layer2 mounts from other/holder)", a, config.Size + layer1.Size},
		{"X, second repository: everything mounts from the first", b, 0},
		{"Y: config and layer2 (layer1 is there)", c, config.Size + layer2.Size},
	} {
		if tc.t.err != nil || tc.t.bytes != tc.want {
			t.Errorf("%s: %d bytes, %v; want %d", tc.name, tc.t.bytes, tc.t.err, tc.want)
		}
	}
	if d.err == nil || !strings.Contains(d.err.Error(), "blob "+config.Digest) || d.bytes != 0 {
		t.Errorf("a destination refusing HEADs: %d bytes, %v", d.bytes, d.err)
	}
	for _, f := range []*fake{x, y, denied} {
		if w := f.writes(); len(w) != 0 {
			t.Errorf("plan wrote to %s: %v", f.Host, w)
		}
	}
	if n := src.count("", "/blobs/"); n != 0 {
		t.Errorf("plan read %d source blobs", n)
	}
	if l.HasBlob(x.Host+"/mirror/a", config.Digest) {
		t.Error("plan recorded a blob in the ledger")
	}
	// each destination HEADs each blob at most once (layer1 is listed twice)
	if n := y.count(http.MethodHead, "/blobs/"+layer1.Digest); n != 1 {
		t.Errorf("%d HEADs of layer1 at Y, want 1", n)
	}
}
