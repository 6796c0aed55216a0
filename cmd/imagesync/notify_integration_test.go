package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/notify"
)

// eventSink is a local webhook receiver: it refuses the first POST (503) so
// that delivery is retried, and keeps every accepted event.
type eventSink struct {
	mu       sync.Mutex
	posts    int
	events   []notify.Event
	raw      []string
	problems []string
	got      chan struct{}
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts++
	if s.posts == 1 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if ct := r.Header.Get("Content-Type"); r.Method != http.MethodPost || ct != notify.ContentType {
		s.problems = append(s.problems, fmt.Sprintf("%s with Content-Type %q", r.Method, ct))
	}
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		s.problems = append(s.problems, fmt.Sprintf("not JSON: %v", err))
	}
	s.raw = append(s.raw, string(body)+fmt.Sprint(r.Header))
	s.events = append(s.events, ev)
	w.WriteHeader(http.StatusAccepted)
	select {
	case s.got <- struct{}{}:
	default:
	}
}

func (s *eventSink) wait(t *testing.T, n int) []notify.Event {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		if len(s.events) >= n {
			out := append([]notify.Event(nil), s.events...)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("%d events within a minute, want %d", len(s.events), n)
		}
	}
}

// TestNotifyEachRun runs a watch-mode sync with --notify against a local
// receiver: one CloudEvent per run (a refused delivery is retried with the
// same event), with the run's counts and failed images, and never the
// password of the auth file.
func TestNotifyEachRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration")
	}
	const pw = "Notify-S3cret-Pw"
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{Htpasswd: map[string]string{"robot": pw}})
	dst := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	d1, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 512, true, 2701)
	sink := &eventSink{got: make(chan struct{}, 1)}
	recv := httptest.NewServer(sink)
	defer recv.Close()

	home := t.TempDir()
	auth := writeFile(t, home, "auth.json", fmt.Sprintf(`{"%s": {"username": "robot", "password": "%s"}}`, src.Host, pw))
	images := writeFile(t, home, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/lib/app\n%s/lib/gone:1: %s/lib/gone\n", src.Host, dst.Host, src.Host, dst.Host))
	w := startWatcher(t, home, "sync", "--auth", auth, "--images", images, "--every", "2s", "--no-progress", "--retries", "0",
		"--notify", recv.URL+"/hook?token=hook-t0ken")

	sink.wait(t, 2)
	w.waitCount(t, nextRunRE, 2)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := w.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("SIGTERM between runs: exit %d", code)
	}
	assertDigest(t, dst, "lib/app", "1", d1)

	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, p := range sink.problems {
		t.Error(p)
	}
	events := sink.events
	if len(events) < 2 {
		t.Fatalf("%d events", len(events))
	}
	ids := map[string]bool{}
	for _, ev := range events {
		ids[ev.ID] = true
	}
	if len(ids) != len(events) {
		t.Errorf("an event was delivered twice: %d events, %d ids", len(events), len(ids))
	}
	if sink.posts != len(events)+1 {
		t.Errorf("%d POSTs for %d events: want one refused and retried", sink.posts, len(events))
	}
	for i, want := range []notify.Summary{{Copied: 1, Failed: 1}, {Skipped: 1, Failed: 1}} {
		ev := events[i]
		d := ev.Data
		if ev.SpecVersion != "1.0" || ev.Type != notify.EventType || ev.Source == "" || ev.ID == "" || ev.Time == "" || ev.DataContentType != "application/json" {
			t.Errorf("event %d: attributes %+v", i, ev)
		}
		got := notify.Summary{Copied: d.Summary.Copied, Skipped: d.Summary.Skipped, Filtered: d.Summary.Filtered, Failed: d.Summary.Failed, NotStarted: d.Summary.NotStarted}
		if d.Run != i+1 || d.Result != "partial" || got != want || d.DurationSeconds <= 0 || !d.Finished.After(d.Started) {
			t.Errorf("event %d: run %d, result %s, counts %+v (want %+v), %v s", i, d.Run, d.Result, got, want, d.DurationSeconds)
		}
		if len(d.Failed) != 1 || d.Failed[0].Source != src.Host+"/lib/gone:1" || d.Failed[0].Destination != dst.Host+"/lib/gone:1" || d.Failed[0].Error == "" {
			t.Errorf("event %d: failed images %+v", i, d.Failed)
		}
	}
	basic := base64.StdEncoding.EncodeToString([]byte("robot:" + pw))
	for i, raw := range sink.raw {
		for _, secret := range []string{pw, basic} {
			if strings.Contains(raw, secret) {
				t.Errorf("event %d holds a secret:\n%s", i, raw)
			}
		}
	}
	if out := w.stderr(); strings.Contains(out, pw) || strings.Contains(out, "hook-t0ken") {
		t.Errorf("stderr holds a secret")
	}
}
