package faultproxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestScriptedFront(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", "yes")
		io.WriteString(w, "hello from "+r.URL.Path)
	}))
	defer target.Close()
	front := Scripted(t, strings.TrimPrefix(target.URL, "http://"), func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		switch r.URL.Path {
		case "/lie":
			c := Capture(forward, r)
			c.Body = []byte(strings.ToUpper(string(c.Body)) + "!")
			c.Send(w, r)
		case "/own":
			io.WriteString(w, "scripted")
		default:
			forward.ServeHTTP(w, r)
		}
	})
	get := func(c *http.Client, url string) (string, http.Header) {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ContentLength >= 0 && int(resp.ContentLength) != len(b) {
			t.Errorf("%s: Content-Length %d, body %d bytes", url, resp.ContentLength, len(b))
		}
		return string(b), resp.Header
	}
	if b, h := get(http.DefaultClient, front.URL+"/pass"); b != "hello from /pass" || h.Get("X-Target") != "yes" {
		t.Errorf("forwarded: %q %v", b, h)
	}
	if b, h := get(http.DefaultClient, front.URL+"/lie"); b != "HELLO FROM /LIE!" || h.Get("X-Target") != "yes" {
		t.Errorf("rewritten: %q", b)
	}
	if b, _ := get(http.DefaultClient, front.URL+"/own"); b != "scripted" {
		t.Errorf("own answer: %q", b)
	}
	if n := front.Count(http.MethodGet, "/"); n != 3 || front.Count("", "/lie") != 1 {
		t.Errorf("counts: %d, %v", n, front.Seen())
	}

	tlsFront := ScriptedTLS(t, "", func(w http.ResponseWriter, r *http.Request, _ http.Handler) { io.WriteString(w, "tls") })
	if !strings.HasPrefix(tlsFront.URL, "https://") || tlsFront.Cert == nil {
		t.Fatalf("TLS front %q", tlsFront.URL)
	}
	if _, err := http.Get(tlsFront.URL); err == nil {
		t.Error("the TLS front's certificate is trusted by default")
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if b, _ := get(insecure, tlsFront.URL+"/x"); b != "tls" {
		t.Errorf("TLS front: %q", b)
	}
}
