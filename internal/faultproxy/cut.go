package faultproxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Cutter is a Script for Scripted that forwards every request and cuts
// chosen answers at a chosen byte, deterministically: the i-th request
// Match accepts (from 0, in the order they reach the front) has its
// connection closed once its body has reached byte At[i] of the resource
// (an offset in the whole blob: a 206 answer's body starts where its
// Content-Range says). Up to that byte everything is sent and flushed; the
// client then sees the body end early (an unexpected EOF, as after a
// reset). Requests past the end of At, or with At[i] < 0, or whose body
// ends before At[i], are not cut. The body bytes of the answers Match
// accepts are counted (Sent): what the source sent.
//
// The zero Cutter forwards everything and counts the bodies of blob GETs.
type Cutter struct {
	// Match picks the requests that count and may be cut; nil: every GET
	// of a path containing "/blobs/" (not an upload).
	Match func(r *http.Request) bool
	// At are the cut points of the matching requests, in order.
	At []int64

	mu   sync.Mutex
	next int
	sent int64
	log  []CutEntry
}

// CutEntry is one request a Cutter matched.
type CutEntry struct {
	Range  string // the request's Range header
	Status int
	Start  int64 // the byte of the resource the body started at
	Sent   int64 // body bytes sent
	Cut    bool  // the connection was cut
}

// Script answers one request (pass it to Scripted).
func (c *Cutter) Script(w http.ResponseWriter, r *http.Request, forward http.Handler) {
	match := c.Match
	if match == nil {
		match = func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && !strings.Contains(r.URL.Path, "/blobs/uploads/")
		}
	}
	if !match(r) {
		forward.ServeHTTP(w, r)
		return
	}
	c.mu.Lock()
	at := int64(-1)
	if c.next < len(c.At) {
		at = c.At[c.next]
	}
	c.next++
	i := len(c.log)
	c.log = append(c.log, CutEntry{Range: r.Header.Get("Range")})
	c.mu.Unlock()
	cw := &cutWriter{ResponseWriter: w, c: c, i: i, at: at}
	forward.ServeHTTP(cw, r)
}

// Sent returns the body bytes sent so far for the requests Match accepted.
func (c *Cutter) Sent() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// Log returns the requests matched so far, in order.
func (c *Cutter) Log() []CutEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CutEntry(nil), c.log...)
}

// cutWriter passes an answer on, counting its body, and cuts it at byte at
// of the resource.
type cutWriter struct {
	http.ResponseWriter
	c     *Cutter
	i     int
	at    int64 // -1: no cut
	wrote bool
	pos   int64 // the byte of the resource the next body byte is
}

func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *cutWriter) WriteHeader(code int) {
	if w.wrote || code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wrote = true
	if code == http.StatusPartialContent {
		w.pos = rangeStart(w.Header().Get("Content-Range"))
	}
	if code != http.StatusOK && code != http.StatusPartialContent {
		w.at = -1 // an error answer: never cut
	}
	w.c.mu.Lock()
	w.c.log[w.i].Status, w.c.log[w.i].Start = code, w.pos
	w.c.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *cutWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	cut := false
	if w.at >= 0 && w.pos+int64(len(b)) > w.at {
		b, cut = b[:max(0, w.at-w.pos)], true
	}
	n, err := w.ResponseWriter.Write(b)
	w.pos += int64(n)
	w.c.mu.Lock()
	w.c.sent += int64(n)
	w.c.log[w.i].Sent += int64(n)
	w.c.log[w.i].Cut = w.c.log[w.i].Cut || cut
	w.c.mu.Unlock()
	if cut {
		// Everything up to the cut reaches the client; then the
		// server closes the connection without ending the body.
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	return n, err
}

// rangeStart is the first byte of "bytes START-END/TOTAL", 0 if unreadable.
func rangeStart(cr string) int64 {
	_, rest, _ := strings.Cut(cr, " ")
	s, _, _ := strings.Cut(rest, "-")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
