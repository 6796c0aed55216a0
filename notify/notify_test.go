package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/imagesync/credentials"
)

func TestParseURL(t *testing.T) {
	secrets := &credentials.SecretSet{}
	if _, err := ParseURL("https://user:pa55word@hooks.example.com/x?token=t0ken-value", secrets); err != nil {
		t.Fatal(err)
	}
	red := secrets.Redact("pa55word and t0ken-value")
	if strings.Contains(red, "pa55word") || strings.Contains(red, "t0ken-value") {
		t.Errorf("the URL's secrets are not redacted: %q", red)
	}
	for _, bad := range []string{"ftp://x.example/", "hooks.example.com/x", "http://", "://x"} {
		_, err := ParseURL(bad, nil)
		if err == nil || !strings.Contains(err.Error(), "--notify") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseURL("ftp://u:secretpw@x.example/?k=v", nil); err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Errorf("an invalid URL's error: %v", err)
	}
}

func TestSendRetriesAndRedacts(t *testing.T) {
	var posts atomic.Int32
	bodies := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if posts.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		bodies <- string(b)
	}))
	defer srv.Close()
	secrets := &credentials.SecretSet{}
	secrets.Add("hunter2-password")
	u, _ := ParseURL(srv.URL, secrets)
	n := New([]*url.URL{u}, Options{Secrets: secrets, Backoff: 10 * time.Millisecond})
	start := time.Now()
	d := RunData{Run: 3, Result: "partial", Started: start, Finished: start.Add(time.Second), DurationSeconds: 1,
		Summary: Summary{Copied: 2, Failed: 1}, Failed: []Failure{{Source: "a.io/x:1", Destination: "b.io/x:1", Error: "401 for robot:hunter2-password"}}}
	n.Send(n.NewEvent(d))
	n.Close(10 * time.Second)
	if posts.Load() != 3 {
		t.Fatalf("%d POSTs, want 2 refused and 1 accepted", posts.Load())
	}
	body := <-bodies
	if strings.Contains(body, "hunter2-password") {
		t.Errorf("the body holds the secret: %s", body)
	}
	var ev Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != EventType || ev.Subject != "run 3" || ev.Data.Summary.Copied != 2 || len(ev.Data.Failed) != 1 || !strings.Contains(ev.Data.Failed[0].Error, "***") {
		t.Errorf("event %+v", ev)
	}
}

func TestSendGivesUp(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.WriteHeader(http.StatusBadRequest) // refused for good: not retried
	}))
	defer srv.Close()
	u, _ := ParseURL(srv.URL, nil)
	n := New([]*url.URL{u}, Options{Backoff: 10 * time.Millisecond})
	n.Send(n.NewEvent(RunData{Run: 1}))
	n.Close(10 * time.Second)
	if posts.Load() != 1 {
		t.Errorf("%d POSTs after a 400, want 1", posts.Load())
	}

	// A receiver that never answers: Close does not wait past its bound.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	u, _ = ParseURL(hang.URL, nil)
	n = New([]*url.URL{u}, Options{Timeout: time.Minute})
	n.Send(n.NewEvent(RunData{Run: 1}))
	start := time.Now()
	n.Close(100 * time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
}

func TestFailuresBounded(t *testing.T) {
	fs := make([]Failure, MaxFailed+7)
	got, omitted := Failures(fs)
	if len(got) != MaxFailed || omitted != 7 {
		t.Errorf("%d listed, %d omitted", len(got), omitted)
	}
}
