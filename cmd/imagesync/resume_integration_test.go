package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// resumeBlobSize is the layer the resume tests copy, made at test time
// (never committed) from a seeded ChaCha8 stream: fast, deterministic, and
// no two regions alike, so bytes resumed from the wrong offset fail the
// digest.
const resumeBlobSize = 256 << 20

// bigBlob returns the digest of the seeded stream of size bytes, and a
// way to read it again.
func bigBlob(t *testing.T, size int64, seed byte) (digest string, open func() io.Reader) {
	t.Helper()
	open = func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{seed, 'b', 'i', 'g'}), size) }
	h := sha256.New()
	if _, err := io.Copy(h, open()); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), open
}

// pushBigImage stores an OCI image whose one layer is a bigBlob of size
// bytes in repo:1, and returns the manifest's and the layer's digests.
func pushBigImage(t *testing.T, r *registrytest.Registry, repo string, size int64) (manifest, layer string) {
	t.Helper()
	layer, open := bigBlob(t, size, 1)
	r.PushBlobReader(t, repo, layer, size, open())
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layer + `"]}}`)
	cfg := r.PushBlob(t, repo, config)
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		registrytest.MediaTypeOCIManifest, cfg, len(config), layer, size)
	return r.PushManifest(t, repo, "1", registrytest.MediaTypeOCIManifest, []byte(raw)), layer
}

// layerCutter forwards a source and cuts its GETs of one blob at the given
// bytes of the blob (the first GET at cuts[0], the next at cuts[1], …),
// counting what the source sends of it.
func layerCutter(t *testing.T, src *registrytest.Registry, digest string, cuts ...int64) (*faultproxy.Cutter, *faultproxy.Front) {
	c := &faultproxy.Cutter{At: cuts, Match: func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+digest)
	}}
	return c, faultproxy.Scripted(t, src.Host, c.Script)
}

// checkResumedReads checks the source GETs of a cut blob: the first reads
// it whole, each next one resumes where the previous was cut, and what the
// source sent is about the blob once (within 15%), however many cuts.
func checkResumedReads(t *testing.T, c *faultproxy.Cutter, size int64, cuts []int64) {
	t.Helper()
	log := c.Log()
	for i, e := range log {
		t.Logf("source GET %d: Range %q → %d, from byte %d, %d bytes sent, cut %v", i, e.Range, e.Status, e.Start, e.Sent, e.Cut)
	}
	if len(log) != len(cuts)+1 {
		t.Fatalf("%d GETs of the blob, want %d (one, then one per cut)", len(log), len(cuts)+1)
	}
	for i, e := range log {
		want, status := "", http.StatusOK
		if i > 0 {
			want, status = fmt.Sprintf("bytes=%d-%d", cuts[i-1], size-1), http.StatusPartialContent
		}
		if e.Range != want || e.Status != status {
			t.Errorf("GET %d: Range %q → %d, want %q → %d", i, e.Range, e.Status, want, status)
		}
	}
	sent := c.Sent()
	ratio := float64(sent) / float64(size)
	t.Logf("the source sent %d bytes for a blob of %d: %.3f×", sent, size, ratio)
	if ratio > 1.15 || sent < size {
		t.Errorf("the source sent %.3f× the blob, want at least 1 and at most 1.15", ratio)
	}
}

// A 256 MiB layer whose source read is cut at 50%, then 90%, then 99%:
// each cut resumes with a Range request from the byte reached, into the
// same upload (one PUT), and the image lands with its digests.
func TestResumeCutSourceRead(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		const size = resumeBlobSize
		want, layer := pushBigImage(t, src, "lib/big", size)
		cuts := []int64{size * 50 / 100, size * 90 / 100, size * 99 / 100}
		cutter, front := layerCutter(t, src, layer, cuts...)
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/big:1: %s/mirror/big\n", front.Host, dst.Host))
		rep, r := syncJSON(t, "--images", images, "--debug")
		if r.code != 0 || rep.Summary.Copied != 1 {
			t.Fatalf("exit %d, %d copied", r.code, rep.Summary.Copied)
		}
		assertDigest(t, dst, "mirror/big", "1", want)
		if !dst.HasBlob(t, "mirror/big", layer) {
			t.Error("the destination lacks the layer")
		}
		checkResumedReads(t, cutter, size, cuts)
		if n := uploadsPerDigest(dst)[layer]; n != 1 {
			t.Errorf("%d PUTs of the layer, want 1 (no upload restarted)", n)
		}
		if rep.Summary.ReadsResumed != 3 || rep.Summary.BytesReread != 0 || rep.Summary.Retries != 0 {
			t.Errorf("summary: %d reads resumed, %d bytes re-read, %d retries; want 3, 0, 0", rep.Summary.ReadsResumed, rep.Summary.BytesReread, rep.Summary.Retries)
		}
		for _, off := range cuts {
			if !strings.Contains(r.stderr, fmt.Sprintf(`resuming a cut blob read: digest=%s from=%s/lib/big offset=%d`, layer, front.Host, off)) {
				t.Errorf("no debug line for the resume at byte %d", off)
			}
		}
	})
}

// One read of the source feeds two destination registries; it is cut
// midway, resumed once, and both uploads complete from it (one PUT each).
func TestResumeCutFanOut(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst1 := pair(t, kind, registrytest.Options{})
		dst2 := registrytest.Start(t, kind, registrytest.Options{})
		// 64 MiB: the cut and the fan-out are what this test is about
		// (TestResumeCutSourceRead measures a 256 MiB blob's three cuts);
		// four 256 MiB uploads through this race-instrumented process made
		// it one of make test's slowest.
		const size = 64 << 20
		want, layer := pushBigImage(t, src, "lib/big", size)
		cuts := []int64{size / 2}
		cutter, front := layerCutter(t, src, layer, cuts...)
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/big:1: [%s/mirror/big, %s/mirror/big]\n", front.Host, dst1.Host, dst2.Host))
		rep, r := syncJSON(t, "--images", images)
		if r.code != 0 || rep.Summary.Copied != 2 {
			t.Fatalf("exit %d, %d copied", r.code, rep.Summary.Copied)
		}
		for _, d := range []*registrytest.Registry{dst1, dst2} {
			assertDigest(t, d, "mirror/big", "1", want)
			if n := uploadsPerDigest(d)[layer]; n != 1 {
				t.Errorf("%s: %d PUTs of the layer, want 1", d.Host, n)
			}
		}
		checkResumedReads(t, cutter, size, cuts)
		if rep.Summary.ReadsResumed != 1 {
			t.Errorf("%d reads resumed, want 1", rep.Summary.ReadsResumed)
		}
	})
}
