package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
)

// sessionStore is a registry's upload sessions in memory, with scripted
// trouble: a store that is a resumableUploader.
type sessionStore struct {
	*memStore
	mu        sync.Mutex
	sessions  map[string][]byte
	next      int
	cancelled []string
	// cutAt cuts the PATCH that crosses this many bytes of a session
	// (keeping what arrived, as distribution 3 does); 0: none.
	cutAt int64
	// lagOne makes the status of a session hide its last byte (an empty
	// session and one of one byte both read "0-0").
	lagOne bool
	// statusCalls counts UploadStatus.
	statusCalls int
}

func newSessionStore(t *testing.T) *sessionStore {
	host, h := newMemHost(t)
	return &sessionStore{memStore: h.repo(host[len(memScheme):], "ns/app"), sessions: map[string][]byte{}}
}

func (s *sessionStore) StartUpload(_ context.Context, _, _ string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	loc := fmt.Sprintf("s%d", s.next)
	s.sessions[loc] = nil
	return loc, false, nil
}

func (s *sessionStore) CancelUpload(_ context.Context, loc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if loc != "" {
		s.cancelled = append(s.cancelled, loc)
		delete(s.sessions, loc)
	}
}

func (s *sessionStore) KeepableSession(loc string) (string, bool) { return loc, true }

func (s *sessionStore) UploadStatus(_ context.Context, loc string, most int64) (string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusCalls++
	data, ok := s.sessions[loc]
	if !ok {
		return "", 0, client.ErrUploadGone
	}
	n := int64(len(data))
	if s.lagOne && n == 1 {
		n = 0
	}
	if n > most {
		return "", 0, errors.New("more than sent")
	}
	return loc, n, nil
}

func (s *sessionStore) PutUploadAt(ctx context.Context, loc, digest string, off, size int64, body io.Reader, progress func(string, int64)) (string, int64, error) {
	for off < size {
		if ctx.Err() != nil {
			return loc, off, ctx.Err()
		}
		n := min(int64(8), size-off)
		s.mu.Lock()
		data, ok := s.sessions[loc]
		if !ok || int64(len(data)) != off {
			s.mu.Unlock()
			return loc, off, &client.Error{Method: http.MethodPatch, Status: http.StatusRequestedRangeNotSatisfiable, Codes: []string{"RANGE_INVALID"}}
		}
		if s.cutAt > off && s.cutAt < off+n {
			part := make([]byte, s.cutAt-off)
			k, _ := io.ReadFull(body, part)
			s.sessions[loc] = append(data, part[:k]...)
			s.cutAt = 0
			s.mu.Unlock()
			return loc, off, errors.New("connection reset")
		}
		s.mu.Unlock()
		part := make([]byte, n)
		if _, err := io.ReadFull(body, part); err != nil {
			return loc, off, err
		}
		s.mu.Lock()
		s.sessions[loc] = append(s.sessions[loc], part...)
		s.mu.Unlock()
		off += n
		if progress != nil {
			progress(loc, off)
		}
	}
	if _, err := body.Read(make([]byte, 1)); err != io.EOF {
		return loc, off, fmt.Errorf("source not at its end: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if oci.DigestWith(digest, s.sessions[loc]) != digest {
		return loc, off, &client.Error{Method: http.MethodPut, Status: http.StatusBadRequest, Codes: []string{"DIGEST_INVALID"}}
	}
	s.blobs[digest] = s.sessions[loc]
	delete(s.sessions, loc)
	return loc, off, nil
}

// uploadResumable: a break resumes in the session; a session that refused
// the bytes at the offset it still reports is replaced; a corrupt source
// fails for good with its session cancelled; an interrupted upload keeps
// its session.
func TestUploadResumable(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 5) // 80 bytes: 10 chunks of 8
	d := oci.Digest(blob)
	for _, tc := range []struct {
		name          string
		cutAt         int64
		lagOne        bool
		corrupt       bool
		cancelled     bool // the context ends before the upload
		wantErr       bool
		wantSessions  int // sessions opened
		wantCancelled int
	}{
		{name: "no trouble", wantSessions: 1},
		{name: "cut midway resumes in the session", cutAt: 45, wantSessions: 1},
		{name: "refused where it stands: a fresh session", cutAt: 1, lagOne: true, wantSessions: 2, wantCancelled: 1},
		{name: "corrupt source", corrupt: true, wantErr: true, wantSessions: 1, wantCancelled: 1},
		{name: "interrupted: the session stays", cancelled: true, wantErr: true, wantSessions: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcHost, sh := newMemHost(t)
			src := sh.repo(srcHost[len(memScheme):], "lib/app")
			if tc.corrupt {
				src.blobs[d] = append(bytes.Clone(blob[:79]), 'X')
			} else {
				src.blobs[d] = blob
			}
			dst := newSessionStore(t)
			dst.cutAt, dst.lagOne = tc.cutAt, tc.lagOne
			x := newTransfer(newBlobTracker(func(Store) reuseKnowledge { return noKnowledge{} }), 1, slog.New(slog.DiscardHandler))
			x.opt = &Options{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := &uploadSlot{dst: dst}
			b := oci.Blob{Digest: d, Size: int64(len(blob))}
			if tc.cancelled {
				loc, _, _ := dst.StartUpload(ctx, d, "")
				s.location = loc
				cancel()
			}
			if !x.uploadResumable(ctx, src, b, s, dst, nil) {
				t.Fatal("not handled")
			}
			if (s.err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", s.err, tc.wantErr)
			}
			if tc.wantErr && tc.corrupt && !oci.IsPermanent(s.err) {
				t.Errorf("a corrupt source's error is not permanent: %v", s.err)
			}
			if dst.next != tc.wantSessions || len(dst.cancelled) != tc.wantCancelled {
				t.Errorf("%d sessions opened, %d cancelled (%v); want %d, %d", dst.next, len(dst.cancelled), dst.cancelled, tc.wantSessions, tc.wantCancelled)
			}
			if !tc.wantErr && !bytes.Equal(dst.blobs[d], blob) {
				t.Errorf("the destination holds %q", dst.blobs[d])
			}
			if !tc.wantErr && s.n > int64(len(blob))+int64(tc.cutAt%8) && tc.wantSessions == 1 {
				t.Errorf("%d bytes sent for %d resumed in the session", s.n, len(blob))
			}
		})
	}
}
