package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// uploadServer is a registry that refuses mounts and monolithic PUTs, takes
// PATCH chunks with their Content-Range, and records DELETEs.
type uploadServer struct {
	mu        sync.Mutex
	sessions  map[string]*bytes.Buffer
	next      int
	deleted   []string
	mounts    int
	refused   int
	patches   []string // Content-Range of each PATCH
	committed map[string][]byte
	maxPatch  int // > 0: a PATCH larger than this is refused with 413
}

func (s *uploadServer) handle(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		const base = "/v2/ns/app/blobs/uploads/"
		switch {
		case r.Method == http.MethodPost && r.URL.Path == base && r.URL.Query().Get("mount") != "":
			s.mounts++
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":[{"code":"DENIED","message":"no pull access to the mount source"}]}`)
		case r.Method == http.MethodPost && r.URL.Path == base:
			s.next++
			id := fmt.Sprintf("s%d", s.next)
			s.sessions[id] = &bytes.Buffer{}
			w.Header().Set("Location", base+id)
			w.WriteHeader(http.StatusAccepted)
		case strings.HasPrefix(r.URL.Path, base):
			id := strings.TrimPrefix(r.URL.Path, base)
			buf, ok := s.sessions[id]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}`)
				return
			}
			switch r.Method {
			case http.MethodDelete:
				s.deleted = append(s.deleted, id)
				delete(s.sessions, id)
				w.WriteHeader(http.StatusNoContent)
			case http.MethodPatch:
				if s.maxPatch > 0 && r.ContentLength > int64(s.maxPatch) {
					io.Copy(io.Discard, r.Body)
					w.WriteHeader(http.StatusRequestEntityTooLarge)
					return
				}
				rng := r.Header.Get("Content-Range")
				var from, to int
				if _, err := fmt.Sscanf(rng, "%d-%d", &from, &to); err != nil || from != buf.Len() {
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return
				}
				s.patches = append(s.patches, rng)
				io.Copy(buf, r.Body)
				w.Header().Set("Location", base+id)
				w.WriteHeader(http.StatusAccepted)
			case http.MethodPut:
				if r.ContentLength > 0 {
					io.Copy(io.Discard, r.Body)
					s.refused++
					w.WriteHeader(http.StatusRequestEntityTooLarge)
					io.WriteString(w, "<html><body>413 Request Entity Too Large</body></html>")
					return
				}
				if d := r.URL.Query().Get("digest"); d != Digest(buf.Bytes()) {
					w.WriteHeader(http.StatusBadRequest)
					io.WriteString(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`)
					return
				}
				s.committed[r.URL.Query().Get("digest")] = buf.Bytes()
				delete(s.sessions, id)
				w.WriteHeader(http.StatusCreated)
			}
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}
}

func TestMountRefusedFallsBackAndChunkedUpload(t *testing.T) {
	defer func(n int) { chunkSize = n }(chunkSize)
	chunkSize = 1000
	s := &uploadServer{sessions: map[string]*bytes.Buffer{}, committed: map[string][]byte{}}
	c, host := server(t, s.handle(t))
	ctx := context.Background()
	repo, _ := c.Repo(ctx, host, "ns/app", true)
	blob := make([]byte, 2500)
	for i := range blob {
		blob[i] = byte(rand.IntN(256))
	}
	d := Digest(blob)

	// A refused mount opens a plain session instead.
	loc, mounted, err := repo.StartUpload(ctx, d, "other/repo")
	if err != nil || mounted || loc == "" || s.mounts != 1 {
		t.Fatalf("StartUpload: %q %v %v (mount attempts %d)", loc, mounted, err, s.mounts)
	}
	// The monolithic PUT is refused: a retryable error, the session cancelled.
	err = repo.PutUpload(ctx, loc, d, int64(len(blob)), bytes.NewReader(blob))
	if !errors.Is(err, ErrMonolithicRefused) || IsPermanent(err) {
		t.Fatalf("monolithic PUT: %v, want a retryable ErrMonolithicRefused", err)
	}
	if len(s.deleted) != 1 {
		t.Fatalf("sessions deleted: %v, want the refused one", s.deleted)
	}
	// The next attempt goes in chunks.
	loc, _, err = repo.StartUpload(ctx, d, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PutUpload(ctx, loc, d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatalf("chunked upload: %v", err)
	}
	if got := strings.Join(s.patches, " "); got != "0-999 1000-1999 2000-2499" {
		t.Errorf("PATCH ranges %q", got)
	}
	if !bytes.Equal(s.committed[d], blob) || s.refused != 1 {
		t.Errorf("committed %d bytes (refused PUTs %d)", len(s.committed[d]), s.refused)
	}
	// A chunked upload whose source turns out bad is cancelled too.
	loc, _, _ = repo.StartUpload(ctx, d, "")
	bad := io.MultiReader(bytes.NewReader(blob[:1500]), errReader{errors.New("source broke")})
	if err := repo.PutUpload(ctx, loc, d, int64(len(blob)), bad); err == nil {
		t.Fatal("a broken source completed an upload")
	}
	if len(s.deleted) != 2 || len(s.sessions) != 0 {
		t.Errorf("deleted %v, sessions left %d", s.deleted, len(s.sessions))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A PATCH refused as too large is resent in halves, and the smaller size
// sticks for the host.
func TestChunkTooLargeIsHalved(t *testing.T) {
	defer func(n, m int) { chunkSize, minChunkSize = n, m }(chunkSize, minChunkSize)
	chunkSize, minChunkSize = 1000, 100
	s := &uploadServer{sessions: map[string]*bytes.Buffer{}, committed: map[string][]byte{}, maxPatch: 300}
	c, host := server(t, s.handle(t))
	ctx := context.Background()
	repo, _ := c.Repo(ctx, host, "ns/app", true)
	repo.h.chunked.Store(true)
	blob := bytes.Repeat([]byte("0123456789"), 130)
	d := Digest(blob)
	for range 2 {
		loc, _, err := repo.StartUpload(ctx, d, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.PutUpload(ctx, loc, d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
			t.Fatalf("upload: %v", err)
		}
	}
	if !bytes.Equal(s.committed[d], blob) || repo.h.chunkLen() != 250 {
		t.Fatalf("committed %d bytes, chunk size now %d (want 250)", len(s.committed[d]), repo.h.chunkLen())
	}
	if got := strings.Join(s.patches[len(s.patches)-6:], " "); got != "0-249 250-499 500-749 750-999 1000-1249 1250-1299" {
		t.Errorf("second upload's PATCH ranges %q", got)
	}
}
