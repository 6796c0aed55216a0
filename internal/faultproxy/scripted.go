package faultproxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Script answers one request of a Scripted front. It may answer by itself,
// forward the request to the target (forward.ServeHTTP), or forward it and
// rewrite the answer (see Capture). It runs concurrently.
type Script func(w http.ResponseWriter, r *http.Request, forward http.Handler)

// Front is a scripted HTTP server in front of a target: a hostile registry
// made of a real one and a script of lies.
type Front struct {
	// Host is "127.0.0.1:PORT" where the front listens.
	Host string
	// URL is "http://Host" (or https with TLS).
	URL string
	// Cert is the front's TLS certificate (nil without TLS): trusted by
	// nobody unless a test says so.
	Cert *tls.Certificate

	mu   sync.Mutex
	seen []Entry
	srv  *httptest.Server
}

// Scripted starts a front on 127.0.0.1 in front of target ("127.0.0.1:PORT",
// plain HTTP; "" for a front that only scripts) and closes it in t.Cleanup.
func Scripted(t testing.TB, target string, script Script) *Front {
	t.Helper()
	return start(t, target, script, false)
}

// ScriptedTLS is Scripted serving HTTPS with a self-signed certificate of its
// own (for 127.0.0.1 and localhost).
func ScriptedTLS(t testing.TB, target string, script Script) *Front {
	t.Helper()
	return start(t, target, script, true)
}

func start(t testing.TB, target string, script Script, useTLS bool) *Front {
	f := &Front{}
	var forward http.Handler = http.NotFoundHandler()
	if target != "" {
		u, err := url.Parse("http://" + strings.TrimPrefix(target, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		tr.DisableCompression = true
		t.Cleanup(tr.CloseIdleConnections)
		forward = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.Out.Host = pr.In.Host // Location headers point back at the front
			},
			Transport:     tr,
			FlushInterval: -1,
			ErrorLog:      log.New(io.Discard, "", 0),
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, Entry{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery})
		f.mu.Unlock()
		script(w, r, forward)
	})
	srv := httptest.NewUnstartedServer(h) // listens on 127.0.0.1
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ReadHeaderTimeout = 30 * time.Second
	if useTLS {
		srv.StartTLS()
		c := srv.TLS.Certificates[0]
		f.Cert = &c
	} else {
		srv.Start()
	}
	f.srv = srv
	f.Host = srv.Listener.Addr().String()
	f.URL = srv.URL
	t.Cleanup(srv.Close)
	return f
}

// Seen returns the requests the front received, in order.
func (f *Front) Seen() []Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Entry(nil), f.seen...)
}

// Count returns how many requests had that method and a path containing
// part ("" method: any).
func (f *Front) Count(method, part string) int {
	n := 0
	for _, e := range f.Seen() {
		if (method == "" || e.Method == method) && strings.Contains(e.Path, part) {
			n++
		}
	}
	return n
}

// Captured is a forwarded answer held back for rewriting.
type Captured struct {
	Status int
	Header http.Header
	Body   []byte
}

// Capture forwards r and returns the answer without sending it.
func Capture(forward http.Handler, r *http.Request) Captured {
	rec := httptest.NewRecorder()
	forward.ServeHTTP(rec, r)
	return Captured{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// Send writes a captured (possibly rewritten) answer, with a Content-Length
// that matches its body.
func (c Captured) Send(w http.ResponseWriter, r *http.Request) {
	for k, v := range c.Header {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	if r.Method != http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(c.Body)))
	}
	w.WriteHeader(c.Status)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, bytes.NewReader(c.Body))
	}
}
