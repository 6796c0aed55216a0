package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/registry/client"
)

func isBlobPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// One GET of the source feeds three registries in lockstep. A destination
// whose PUT is refused for good drops out without stopping the others; one
// that fails transiently is redone alone from a fresh read.
func TestFanOutOneReadManyRegistries(t *testing.T) {
	src := newFake(t, nil)
	content := bytes.Repeat([]byte("layer bytes "), 100_000) // 1.2 MB: several reads
	b := src.blob("ns/src", content)
	failOnce := true
	ok := newFake(t, nil)
	flaky := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if isBlobPut(r) && failOnce {
			failOnce = false
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	denied := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if isBlobPut(r) {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
	e := newEngine(t, Options{})
	var planned, moved int64
	e.opt.OnPlanned = func(n int64) { planned += n }
	e.opt.OnBytes = func(n int64) { moved += n }
	dsts := []*fake{ok, flaky, denied}
	var slots []*uploadSlot
	for _, d := range dsts {
		slots = append(slots, &uploadSlot{dst: d.repo(t, e, "mirror/app")})
	}
	e.upload(context.Background(), src.repo(t, e, "ns/src"), b, slots, nil)

	for i, d := range dsts[:2] {
		if slots[i].err != nil || slots[i].n != b.Size {
			t.Errorf("destination %d: %d bytes, %v", i, slots[i].n, slots[i].err)
		}
		if got, _ := d.Blobs.get("mirror/app", b.Digest); !bytes.Equal(got, content) {
			t.Errorf("destination %d holds %d bytes, want the %d of the source", i, len(got), len(content))
		}
	}
	if slots[2].err == nil || !client.IsPermanent(slots[2].err) || denied.count(http.MethodPut, "/blobs/uploads/") != 1 {
		t.Errorf("denied destination: %v after %d PUTs; want one permanent failure", slots[2].err, denied.count(http.MethodPut, "/blobs/uploads/"))
	}
	if _, held := denied.Blobs.get("mirror/app", b.Digest); held {
		t.Error("the denied destination holds the blob")
	}
	// First attempt: one GET for all three; the transient failure: one more GET, for it alone.
	if n := src.count(http.MethodGet, "/blobs/"+b.Digest); n != 2 {
		t.Errorf("%d source GETs, want 2 (one read for three registries, one for the retry)", n)
	}
	if n := ok.count(http.MethodPut, "/blobs/uploads/"); n != 1 {
		t.Errorf("the healthy destination got %d PUTs, want 1", n)
	}
	if n := e.uploaded.Load(); n != 2 || e.bytes.Load() != 2*b.Size {
		t.Errorf("counted %d uploads of %d bytes, want 2 of %d", n, e.bytes.Load(), 2*b.Size)
	}
	if planned != 4*b.Size || moved < 3*b.Size {
		t.Errorf("progress: planned %d, moved %d; want %d planned (3 then 1 copies), at least %d moved", planned, moved, 4*b.Size, 3*b.Size)
	}
}

// A source that sends other bytes than its digest says: no destination
// commits them, every one fails for good, and the source is read once.
func TestFanOutCorruptSourceCommitsNothing(t *testing.T) {
	content := bytes.Repeat([]byte{'a'}, 300_000)
	src := newFake(t, nil)
	b := src.blob("ns/src", content)
	src.Blobs.put("ns/src", b.Digest, bytes.Repeat([]byte{'b'}, len(content))) // same size, other bytes
	dsts := []*fake{newFake(t, nil), newFake(t, nil), newFake(t, nil)}
	e := newEngine(t, Options{})
	var slots []*uploadSlot
	for _, d := range dsts {
		slots = append(slots, &uploadSlot{dst: d.repo(t, e, "mirror/app")})
	}
	e.upload(context.Background(), src.repo(t, e, "ns/src"), b, slots, nil)
	for i, s := range slots {
		if !errors.Is(s.err, errDigestMismatch) || !client.IsPermanent(s.err) {
			t.Errorf("destination %d: %v, want a permanent digest mismatch", i, s.err)
		}
		if _, held := dsts[i].Blobs.get("mirror/app", b.Digest); held {
			t.Errorf("destination %d committed the corrupt blob", i)
		}
	}
	if n := src.count(http.MethodGet, "/blobs/"); n != 1 {
		t.Errorf("%d source GETs, want 1 (a mismatch is not retried)", n)
	}
}

// fanOut on its own: a short source fails every PUT, none commits.
func TestFanOutShortSource(t *testing.T) {
	content := []byte(strings.Repeat("x", 1000))
	dsts := []*fake{newFake(t, nil), newFake(t, nil)}
	e := newEngine(t, Options{})
	d := client.Digest(content)
	var slots []*uploadSlot
	for _, f := range dsts {
		r := f.repo(t, e, "mirror/app")
		loc, _, err := r.StartUpload(context.Background(), d, "")
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, &uploadSlot{dst: r, location: loc})
	}
	vr, err := newVerifier(bytes.NewReader(content[:600]), d, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	fanOut(context.Background(), vr, d, int64(len(content)), slots)
	for i, s := range slots {
		if !errors.Is(s.err, errDigestMismatch) || s.n != 0 {
			t.Errorf("slot %d: %d bytes, %v", i, s.n, s.err)
		}
		if _, held := dsts[i].Blobs.get("mirror/app", d); held {
			t.Errorf("destination %d committed a short blob", i)
		}
	}
}

func TestVerifierRejects(t *testing.T) {
	content := []byte("hello")
	d := client.Digest(content)
	for _, tc := range []struct {
		name, digest string
		body         []byte
		size         int64
		want         string
	}{
		{"malformed digest", "sha256:abc", content, 5, "malformed digest"},
		{"longer than said", d, []byte("hello world"), 5, "more than 5 bytes"},
		{"other bytes", d, []byte("HELLO"), 5, "digest mismatch"},
		{"unknown size, other bytes", d, []byte("HELLO"), -1, "digest mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vr, err := newVerifier(bytes.NewReader(tc.body), tc.digest, tc.size)
			if err == nil {
				_, err = readAll(vr)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !client.IsPermanent(err) {
				t.Fatalf("got %v, want a permanent error containing %q", err, tc.want)
			}
		})
	}
	// the right bytes, fewer than the manifest says: worth another read
	vr, _ := newVerifier(bytes.NewReader(content), d, 10)
	if _, err := readAll(vr); err == nil || !strings.Contains(err.Error(), "ended after 5 of 10 bytes") || client.IsPermanent(err) {
		t.Fatalf("short read: %v, want a transient error", err)
	}
	vr, _ = newVerifier(bytes.NewReader(content), d, -1)
	if got, err := readAll(vr); err != nil || got != "hello" {
		t.Fatalf("good blob of unknown size: %q, %v", got, err)
	}
}

// The HTTP transport reads a request body once more after its
// Content-Length, and may do it after the registry has answered: that read
// must find the verifier finished and change nothing the uploader reads
// (under -race, a write there is reported).
func TestVerifierFinishesAtItsSize(t *testing.T) {
	content := []byte("hello, world")
	vr, err := newVerifier(io.NopCloser(bytes.NewReader(content)), client.Digest(content), int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(vr, int64(len(content))))
	if err != nil || string(got) != string(content) {
		t.Fatalf("read %q, %v", got, err)
	}
	if !vr.done || vr.err != nil {
		t.Fatalf("after the blob's size: done %v, err %v; want finished", vr.done, vr.err)
	}
	drained := make(chan error)
	go func() {
		n, err := vr.Read(make([]byte, 8))
		if n != 0 {
			err = fmt.Errorf("%d bytes after the end", n)
		}
		drained <- err
	}()
	if vr.n != int64(len(content)) || vr.err != nil { // read while the drain runs
		t.Errorf("n %d, err %v", vr.n, vr.err)
	}
	if err := <-drained; err != io.EOF {
		t.Errorf("the read after the end: %v, want EOF", err)
	}
}

func readAll(v *verifier) (string, error) {
	var b strings.Builder
	buf := make([]byte, 2)
	for {
		n, err := v.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if err.Error() == "EOF" {
				return b.String(), nil
			}
			return b.String(), fmt.Errorf("after %d bytes: %w", b.Len(), err)
		}
	}
}
