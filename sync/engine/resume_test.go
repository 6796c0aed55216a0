package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imagesync/imagesync/registry/client"
)

// isBlobGet reports a GET of a blob (not an upload).
func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && !strings.Contains(r.URL.Path, "/uploads/")
}

// sendCut answers with the headers of the whole blob (or of its range from
// start), sends body, and cuts the connection.
func sendCut(w http.ResponseWriter, status int, start, size int64, body []byte) {
	if status == http.StatusPartialContent {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, size-1, size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size-start, 10))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

func randomBlob(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// A blob read cut midway resumes from the byte it reached, and what the
// registry answers to the Range request is checked: a 206 from another
// byte or for another size is refused, a 200 (Range ignored) is read up
// to the offset and dropped, a read cut again and again without progress
// is given up after maxStalledResumes resumes, one that progresses each
// time goes on, and a permanent error on the resume ends it at once.
func TestResumingReader(t *testing.T) {
	const size, cut = 64 << 10, 20 << 10
	content := randomBlob(size, 1)
	type answer func(w http.ResponseWriter, r *http.Request, n int) bool // n: which resume (from 1)
	cases := []struct {
		name    string
		answer  answer // for the GETs after the first; false: the fake answers
		resumes int64  // counted by onResume
		reread  int64
		gets    int    // blob GETs in all
		err     string // "" for a whole, right read
		perm    bool
	}{
		{name: "206 from the offset", resumes: 1, gets: 2},
		{name: "200: the whole blob again", resumes: 1, reread: cut, gets: 2,
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				w.Header().Set("Content-Length", strconv.Itoa(size))
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(content)
				return true
			}},
		{name: "206 from another byte", gets: 1 + maxStalledResumes, err: "206 for bytes from 0",
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", size-1, size))
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(content)
				return true
			}},
		{name: "206 for another total", gets: 1 + maxStalledResumes, err: "for a blob of 65536 bytes",
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cut, size-1, size+10))
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(content[cut:])
				return true
			}},
		{name: "206 without Content-Range", gets: 1 + maxStalledResumes, err: `206 with Content-Range ""`,
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(content[cut:])
				return true
			}},
		{name: "200 for another size", gets: 1 + maxStalledResumes, err: "200 with Content-Length 10",
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				_, _ = w.Write(content[:10])
				return true
			}},
		{name: "cut again without progress", resumes: maxStalledResumes, gets: 1 + maxStalledResumes, err: "gave up after 5 resumes",
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				sendCut(w, http.StatusPartialContent, cut, size, nil)
				return true
			}},
		{name: "cut again after progress", resumes: (size - cut) / (4 << 10), gets: 1 + (size-cut)/(4<<10),
			answer: func(w http.ResponseWriter, r *http.Request, n int) bool {
				start := int64(cut + (n-1)*(4<<10))
				if start+4<<10 >= size {
					return false // the last: whole
				}
				sendCut(w, http.StatusPartialContent, start, size, content[start:start+4<<10])
				return true
			}},
		{name: "blob gone", gets: 2, err: "404", perm: true,
			answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
				http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}`, http.StatusNotFound)
				return true
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var gets atomic.Int32
			var mu sync.Mutex
			var ranges []string
			src := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
				if !isBlobGet(r) {
					return false
				}
				n := int(gets.Add(1))
				if n == 1 {
					sendCut(w, http.StatusOK, 0, size, content[:cut])
				}
				mu.Lock()
				ranges = append(ranges, r.Header.Get("Range"))
				mu.Unlock()
				return c.answer != nil && c.answer(w, r, n-1)
			})
			b := src.blob("ns/src", content)
			e := newEngine(t, Options{})
			repo := src.repo(t, e, "ns/src")
			ctx := context.Background()
			rc, _, err := repo.GetBlob(ctx, b.Digest)
			if err != nil {
				t.Fatal(err)
			}
			var resumes, reread int64
			rr := newResumingReader(ctx, repo, b.Digest, b.Size, rc, func(offset, skip int64) { resumes++; reread += skip })
			got, err := io.ReadAll(rr)
			rr.Close()
			switch {
			case c.err == "" && (err != nil || !bytes.Equal(got, content)):
				t.Errorf("read %d bytes, %v; want the %d of the blob", len(got), err, size)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || client.IsPermanent(err) != c.perm):
				t.Errorf("error %v (permanent %v), want one saying %q (permanent %v)", err, client.IsPermanent(err), c.err, c.perm)
			case c.err != "" && !bytes.Equal(got, content[:len(got)]):
				t.Errorf("the %d bytes read before the error are not the blob's", len(got))
			}
			if resumes != c.resumes || reread != c.reread || int(gets.Load()) != c.gets {
				t.Errorf("%d resumes, %d bytes re-read, %d GETs; want %d, %d, %d", resumes, reread, gets.Load(), c.resumes, c.reread, c.gets)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ranges) > 0 && ranges[0] != fmt.Sprintf("bytes=%d-%d", cut, size-1) {
				t.Errorf("the first resume asked for %q", ranges[0])
			}
		})
	}
}

// One read of the source feeds two registries; it is cut midway and
// resumed: both uploads complete from that one resumed read, with one PUT
// each, and the source sends the blob about once.
func TestUploadResumesCutRead(t *testing.T) {
	const size = 1 << 20
	content := randomBlob(size, 2)
	var gets atomic.Int32
	src := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		if isBlobGet(r) && gets.Add(1) == 1 {
			sendCut(w, http.StatusOK, 0, size, content[:size/2])
		}
		return false
	})
	b := src.blob("ns/src", content)
	dsts := []*fake{newFake(t, nil), newFake(t, nil)}
	e := newEngine(t, Options{})
	var slots []*uploadSlot
	for _, d := range dsts {
		slots = append(slots, &uploadSlot{dst: d.repo(t, e, "mirror/app")})
	}
	e.upload(context.Background(), src.repo(t, e, "ns/src"), b, slots, nil)
	for i, d := range dsts {
		if slots[i].err != nil || slots[i].n != b.Size {
			t.Errorf("destination %d: %d bytes, %v", i, slots[i].n, slots[i].err)
		}
		if got, _ := d.Blobs.get("mirror/app", b.Digest); !bytes.Equal(got, content) {
			t.Errorf("destination %d holds %d bytes, want the blob", i, len(got))
		}
		if n := d.count(http.MethodPut, "/blobs/uploads/"); n != 1 {
			t.Errorf("destination %d: %d PUTs, want 1 (no restart)", i, n)
		}
	}
	if n := gets.Load(); n != 2 || e.readsResumed.Load() != 1 || e.bytesReread.Load() != 0 {
		t.Errorf("%d source GETs, %d resumes, %d bytes re-read; want 2, 1, 0", n, e.readsResumed.Load(), e.bytesReread.Load())
	}
}
