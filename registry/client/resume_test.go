package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestParseUploadRange(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want int64
		ok   bool
	}{
		{[]string{"0-0"}, 0, true}, // distribution's empty session
		{[]string{"0-1048575"}, 1 << 20, true},
		{[]string{"bytes=0-99"}, 100, true},
		{[]string{"0-999999999999999999"}, 1e18, true},
		{nil, 0, false},
		{[]string{"0-1", "0-2"}, 0, false},
		{[]string{""}, 0, false},
		{[]string{"0-"}, 0, false},
		{[]string{"1-100"}, 0, false},                 // not from the start
		{[]string{"0--5"}, 0, false},                  // negative
		{[]string{"0-+5"}, 0, false},                  // sign
		{[]string{"0- 5"}, 0, false},                  // space
		{[]string{"0-5 "}, 0, false},                  // trailing junk
		{[]string{"0-0x10"}, 0, false},                // hex
		{[]string{"0-007"}, 0, false},                 // leading zeros
		{[]string{"0-9999999999999999999"}, 0, false}, // 19 digits: over int64 territory
		{[]string{"0-5/10"}, 0, false},
		{[]string{"0-5,7-9"}, 0, false},
	} {
		got, err := parseUploadRange(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseUploadRange(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), strings.Repeat("9", 30)) {
			t.Errorf("error not clipped: %v", err)
		}
	}
}

func TestUploadStatusValidates(t *testing.T) {
	const base = "/v2/ns/app/blobs/uploads/"
	for _, tc := range []struct {
		name     string
		status   int
		rng      []string
		location string
		most     int64
		wantOff  int64
		wantLoc  string // suffix; "" with wantErr
		wantErr  string
		gone     bool
	}{
		{name: "resumable", status: 204, rng: []string{"0-4095"}, location: base + "s1?_state=abc", most: 8192, wantOff: 4096, wantLoc: base + "s1?_state=abc"},
		{name: "no location keeps the old one", status: 204, rng: []string{"0-4095"}, most: 4096, wantOff: 4096, wantLoc: base + "s1"},
		{name: "more than was sent", status: 204, rng: []string{"0-4096"}, location: base + "s1", most: 4096, wantErr: "claims 4097 bytes, 4096 were sent"},
		{name: "no range", status: 204, location: base + "s1", most: 10, wantErr: "0 Range headers"},
		{name: "two ranges", status: 204, rng: []string{"0-1", "0-2"}, location: base + "s1", most: 10, wantErr: "2 Range headers"},
		{name: "bad range", status: 204, rng: []string{"0-1x"}, location: base + "s1", most: 10, wantErr: "malformed Range"},
		{name: "file location", status: 204, rng: []string{"0-1"}, location: "file:///etc/passwd", most: 10, wantErr: "usable Location"},
		{name: "javascript location", status: 204, rng: []string{"0-1"}, location: "javascript:alert(1)", most: 10, wantErr: "usable Location"},
		{name: "unknown session", status: 404, most: 10, gone: true},
		{name: "invalid session", status: 400, most: 10, gone: true},
		{name: "server error", status: 500, most: 10, wantErr: "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != base+"s1" {
					t.Errorf("unexpected %s %s", r.Method, r.URL)
				}
				for _, v := range tc.rng {
					w.Header().Add("Range", v)
				}
				if tc.location != "" {
					w.Header().Set("Location", tc.location)
				}
				w.WriteHeader(tc.status)
			})
			repo, _ := c.Repo(context.Background(), host, "ns/app", true)
			loc, off, err := repo.UploadStatus(context.Background(), "http://"+host+base+"s1", tc.most)
			switch {
			case tc.gone:
				if !errors.Is(err, ErrUploadGone) {
					t.Fatalf("err = %v, want ErrUploadGone", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			default:
				if err != nil || off != tc.wantOff || !strings.HasSuffix(loc, tc.wantLoc) || !strings.HasPrefix(loc, "http://"+host) {
					t.Fatalf("got %q %d %v, want …%s %d", loc, off, err, tc.wantLoc, tc.wantOff)
				}
			}
		})
	}
}

func TestKeepableSession(t *testing.T) {
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {})
	repo, _ := c.Repo(context.Background(), host, "ns/app", true)
	up := "http://" + host + "/v2/ns/app/blobs/uploads/0a1b"
	for _, tc := range []struct {
		loc  string
		keep bool
	}{
		{up, true},
		{up + "?_state=eyJOYW1lIjoibnMvYXBwIn0%3D", true}, // distribution's own HMAC'd state: kept without it
		{up + "?", true},
		{"https://" + host + "/v2/ns/app/blobs/uploads/0a1b", true},
		{"http://storage.example.com/bucket/upload?partNumber=1", false}, // another host
		{"http://127.0.0.1:1/v2/ns/app/blobs/uploads/0a1b", false},
		{"http://user:pw@" + host + "/v2/ns/app/blobs/uploads/0a1b", false},
		{up + "?X-Amz-Signature=abc&X-Amz-Credential=k", false},
		{up + "?x-amz-security-token=abc", false},
		{up + "?X-Goog-Signature=abc", false},
		{up + "?sig=abc&se=2030-01-01&sv=2020", false},         // Azure SAS
		{up + "?Signature=abc&Key-Pair-Id=k&Expires=1", false}, // CloudFront
		{up + "?token=abc", false},
		{up + "?access_token=abc", false},
		{up + "?_state=x&upload_key=y", false},
		{up + "#frag", false},
		{"ftp://" + host + "/x", false},
		{"::not a url", false},
	} {
		kept, ok := repo.KeepableSession(tc.loc)
		if ok != tc.keep || (ok && (strings.ContainsAny(kept, "?#@") || !strings.HasPrefix(tc.loc, kept))) || (!ok && kept != "") {
			t.Errorf("KeepableSession(%q) = %q, %v; want %v, without query", tc.loc, kept, ok, tc.keep)
		}
	}
}

// A PATCH that fails in the transport names the session without its query
// (the upload state, a signed URL's signature).
func TestSessionErrorsHideTheQuery(t *testing.T) {
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", true)
	loc := "http://" + host + "/v2/ns/app/blobs/uploads/s1?_state=SECRETSTATE&X-Amz-Signature=SECRETSIG"
	blob := bytes.Repeat([]byte("x"), 100)
	_, _, err := repo.PutUploadAt(context.Background(), loc, Digest(blob), 0, 100, bytes.NewReader(blob), nil)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v, want one without the query", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || strings.Contains(ue.URL, "?") {
		t.Fatalf("err = %#v: want a *url.Error without the query", err)
	}
	_, _, err = repo.UploadStatus(context.Background(), loc, 100)
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("UploadStatus err = %v, want one without the query", err)
	}
	// the monolithic PUT and the chunked fallback too
	err = repo.PutUpload(context.Background(), loc, Digest(blob), 100, bytes.NewReader(blob))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("PutUpload err = %v, want one without the query", err)
	}
	repo.h.chunked.Store(true)
	err = repo.PutUpload(context.Background(), loc, Digest(blob), 100, bytes.NewReader(blob))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("chunked PutUpload err = %v, want one without the query", err)
	}
}

// resumeServer keeps what each PATCH sent, in order, and closes a session
// with the digest of its bytes.
type resumeServer struct {
	mu       sync.Mutex
	data     []byte
	ranges   []string
	closed   string
	cutPatch int // cut the PATCH of this number (from 1) after half its body
}

func (s *resumeServer) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPatch:
		s.ranges = append(s.ranges, r.Header.Get("Content-Range"))
		var from, to int64
		if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "%d-%d", &from, &to); err != nil || from != int64(len(s.data)) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if len(s.ranges) == s.cutPatch {
			part, _ := io.ReadAll(io.LimitReader(r.Body, (to-from+1)/2))
			s.data = append(s.data, part...)
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		b, _ := io.ReadAll(r.Body)
		s.data = append(s.data, b...)
		w.Header().Set("Location", fmt.Sprintf("%s?n=%d", r.URL.Path, len(s.data)))
		w.WriteHeader(http.StatusAccepted)
	case http.MethodGet:
		w.Header().Set("Range", fmt.Sprintf("0-%d", max(len(s.data)-1, 0)))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		if Digest(s.data) != r.URL.Query().Get("digest") {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`)
			return
		}
		s.closed = r.URL.Query().Get("digest")
		w.WriteHeader(http.StatusCreated)
	}
}

// PutUploadAt streams PATCH chunks from an offset, reports each
// acknowledged one, and after a cut chunk UploadStatus gives the offset to
// go on from.
func TestPutUploadAtResumes(t *testing.T) {
	defer func(n int64) { resumeChunkSize = n }(resumeChunkSize)
	resumeChunkSize = 1000
	s := &resumeServer{}
	c, host := server(t, s.handle)
	ctx := context.Background()
	repo, _ := c.Repo(ctx, host, "ns/app", true)
	blob := make([]byte, 3500)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	d := Digest(blob)
	loc := "http://" + host + "/v2/ns/app/blobs/uploads/s1"
	var acks []int64
	progress := func(_ string, off int64) { acks = append(acks, off) }
	// The first two chunks land, the third is cut after 500 bytes.
	s.cutPatch = 3
	last, off, err := repo.PutUploadAt(ctx, loc, d, 0, int64(len(blob)), bytes.NewReader(blob), progress)
	if err == nil || off != 2000 || fmt.Sprint(acks) != "[1000 2000]" || !strings.HasSuffix(last, "?n=2000") {
		t.Fatalf("cut upload: %q %d %v, acks %v", last, off, err, acks)
	}
	next, at, err := repo.UploadStatus(ctx, last, int64(len(blob)))
	if err != nil || at != 2500 {
		t.Fatalf("status: %d %v, want 2500", at, err)
	}
	if _, _, err := repo.PutUploadAt(ctx, next, d, at, int64(len(blob)), bytes.NewReader(blob[at:]), progress); err != nil {
		t.Fatal(err)
	}
	if s.closed != d || !bytes.Equal(s.data, blob) {
		t.Fatalf("closed %q with %d bytes (equal %v)", s.closed, len(s.data), bytes.Equal(s.data, blob))
	}
	if want := "[0-999 1000-1999 2000-2999 2500-3499]"; fmt.Sprint(s.ranges) != want {
		t.Fatalf("PATCH ranges %v, want %s", s.ranges, want)
	}
	// A source with more bytes than the blob's size never closes the session.
	s2 := &resumeServer{}
	c2, host2 := server(t, s2.handle)
	repo2, _ := c2.Repo(ctx, host2, "ns/app", true)
	_, _, err = repo2.PutUploadAt(ctx, "http://"+host2+"/v2/ns/app/blobs/uploads/s1", d, 0, int64(len(blob)), io.MultiReader(bytes.NewReader(blob), strings.NewReader("more")), nil)
	if err == nil || s2.closed != "" {
		t.Fatalf("longer source: %v, closed %q", err, s2.closed)
	}
}

func TestSessionTroubleAndRefusedChunks(t *testing.T) {
	e := func(method string, status int, codes ...string) error {
		return fmt.Errorf("wrapped: %w", &Error{Method: method, Status: status, Codes: codes})
	}
	for _, tc := range []struct {
		err             error
		trouble, refuse bool
	}{
		{e("PATCH", 416), true, false},
		{e("PATCH", 400, "RANGE_INVALID"), true, false},
		{e("PATCH", 404, "BLOB_UPLOAD_UNKNOWN"), true, false},
		{e("PATCH", 404, "BLOB_UPLOAD_INVALID"), true, false},
		{e("PUT", 400, "DIGEST_INVALID"), true, false},
		{e("PATCH", 413), true, false},
		{e("PATCH", 405), false, true},
		{e("PATCH", 501), false, true},
		{e("PATCH", 400, "UNSUPPORTED"), false, true},
		{e("PUT", 405), false, false}, // a PUT's refusal is not of chunks
		{e("PATCH", 401), false, false},
		{e("PATCH", 403, "DENIED"), false, false},
		{errors.New("connection reset"), false, false},
	} {
		if got := IsSessionTrouble(tc.err); got != tc.trouble {
			t.Errorf("IsSessionTrouble(%v) = %v", tc.err, got)
		}
		if got := RefusesChunks(tc.err); got != tc.refuse {
			t.Errorf("RefusesChunks(%v) = %v", tc.err, got)
		}
	}
}
