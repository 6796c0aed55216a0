package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A Cutter cuts the first blob GET at byte 50 and the second (a Range
// request from 50) at byte 90 of the blob; the third goes through. Every
// byte before a cut reaches the client, and Sent counts them all.
func TestCutterCutsAtBlobOffsets(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 10) // 100 bytes
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	defer target.Close()
	c := &Cutter{At: []int64{50, 90, 30}} // the third cut point is before its range: ...
	front := Scripted(t, strings.TrimPrefix(target.URL, "http://"), c.Script)
	get := func(path, rng string) (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	if n, _, _ := get("/v2/r/manifests/x", ""); n != http.StatusOK || c.Sent() != 0 {
		t.Fatalf("an unmatched request: %d, counted %d bytes", n, c.Sent())
	}
	steps := []struct {
		rng    string
		status int
		want   []byte
		cut    bool
	}{
		{"", http.StatusOK, blob[:50], true},
		{"bytes=50-", http.StatusPartialContent, blob[50:90], true},
		{"bytes=90-", http.StatusPartialContent, nil, true}, // ... so nothing of it is sent
		{"bytes=90-", http.StatusPartialContent, blob[90:], false},
	}
	for i, s := range steps {
		status, b, err := get("/v2/r/blobs/sha256:x", s.rng)
		if status != s.status || !bytes.Equal(b, s.want) || s.cut != errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("GET %d (%q): %d, %d bytes %q, %v; want %d, %q, cut %v", i, s.rng, status, len(b), b, err, s.status, s.want, s.cut)
		}
	}
	if got := c.Sent(); got != 100 {
		t.Errorf("sent %d body bytes, want 100", got)
	}
	log := c.Log()
	if len(log) != 4 || log[1].Start != 50 || log[1].Range != "bytes=50-" || log[1].Sent != 40 || !log[1].Cut || log[3].Cut {
		t.Errorf("log %+v", log)
	}
}
