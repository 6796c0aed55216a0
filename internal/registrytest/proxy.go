package registrytest

import (
	"crypto/tls"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
)

// Request is one request seen by the counting proxy.
type Request struct {
	Method, Path, RawQuery string
	// Status is the response status sent to the client (502 if the server
	// could not be reached).
	Status int
}

func (r Request) String() string {
	q := ""
	if r.RawQuery != "" {
		q = "?" + r.RawQuery
	}
	return fmt.Sprintf("%s %s%s -> %d", r.Method, r.Path, q, r.Status)
}

// RequestLog records the requests that went through the proxy. It is safe
// for concurrent use. A request is recorded before its response headers
// reach the client.
type RequestLog struct {
	mu   sync.Mutex
	reqs []Request
}

// All returns a copy of the recorded requests in order.
func (l *RequestLog) All() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

// Reset forgets all recorded requests.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}

// Count returns how many recorded requests have the method (any method if
// "") and a path matching pathRegexp (unanchored, e.g. `/manifests/`).
// It panics if pathRegexp does not compile.
func (l *RequestLog) Count(method string, pathRegexp string) int {
	re := regexp.MustCompile(pathRegexp)
	n := 0
	for _, r := range l.All() {
		if (method == "" || r.Method == method) && re.MatchString(r.Path) {
			n++
		}
	}
	return n
}

func (l *RequestLog) add(r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

// newProxy returns the counting reverse proxy handler for r.Direct.
func newProxy(r *Registry, errLog *log.Logger) http.Handler {
	target := &url.URL{Scheme: r.Scheme(), Host: r.Direct}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true // never alter bodies / Content-Encoding
	if r.opt.TLS {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.CertPool(), MinVersion: tls.VersionTLS12}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep the client's Host so that URLs the registry builds
			// (Location headers) point back at the proxy.
			pr.Out.Host = pr.In.Host
			// Rewrite strips X-Forwarded-*; pass the client's through unchanged.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      errLog,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.tokens != nil && req.URL.Path == "/token" {
			r.tokens.ServeHTTP(w, req) // the token server: recorded in r.Tokens, not in r.Log
			return
		}
		rw := &recordingWriter{ResponseWriter: w, log: r.Log,
			req: Request{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery}}
		rp.ServeHTTP(rw, req)
		if !rw.recorded {
			rw.record(http.StatusOK)
		}
	})
}

// recordingWriter records the request with the final status when the
// response header is written.
type recordingWriter struct {
	http.ResponseWriter
	log      *RequestLog
	req      Request
	recorded bool
}

func (w *recordingWriter) record(code int) {
	w.recorded = true
	w.req.Status = code
	w.log.add(w.req)
}

func (w *recordingWriter) WriteHeader(code int) {
	// 1xx (e.g. 100 Continue) are informational; wait for the final status.
	if !w.recorded && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.record(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.recorded {
		w.record(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (used by ReverseProxy for flushing)
// reach the underlying writer.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
