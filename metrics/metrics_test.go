package metrics

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

func job(repo, tag string) rules.Job {
	r := &rules.Rule{Source: rules.Source{Registry: "src.io", Repository: repo}}
	return rules.Job{Source: rules.Ref{Registry: "src.io", Repository: repo, Tag: tag}, Destination: rules.Ref{Registry: "dst.io", Repository: repo, Tag: tag}, Rule: r}
}

func TestRunsAndImages(t *testing.T) {
	m := New("test")
	start := time.Now()
	m.RunStarted()
	results := []engine.JobResult{
		{Job: job("lib/a", "1"), Action: engine.Copied},
		{Job: job("lib/a", "2"), Action: engine.Skipped},
		{Job: job("lib/b", "1"), Action: engine.Failed, Err: errors.New("boom")},
		{Job: job("lib/b", "2"), Action: engine.Failed, NotStarted: true},
		{Job: job("lib/a", "1"), Action: engine.Copied, Subject: "sha256:x"}, // a referrer: not an image
	}
	for _, r := range results {
		m.Job(r)
	}
	res := &engine.Result{Jobs: results[:4], Summary: engine.Summary{Copied: 1, Skipped: 1, Failed: 1, NotStarted: 1, Bytes: 1000, BytesMounted: 500, BlobsUploaded: 2, BlobsMounted: 1}}
	if got := m.RunFinished(res, start, time.Now()); got != RunPartial {
		t.Errorf("result %s, want partial", got)
	}
	for _, tc := range []struct {
		label string
		want  float64
	}{{"copied", 1}, {"skipped", 1}, {"failed", 1}, {"not_started", 1}, {"filtered", 0}} {
		if got := testutil.ToFloat64(m.images.WithLabelValues(tc.label)); got != tc.want {
			t.Errorf("images{%s} = %v, want %v", tc.label, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.uploadedBytes); got != 1000 {
		t.Errorf("uploaded bytes %v", got)
	}
	if got := testutil.ToFloat64(m.mountedBytes); got != 500 {
		t.Errorf("mounted bytes %v", got)
	}
	if got := testutil.ToFloat64(m.lastSuccess); got != 0 {
		t.Errorf("last success %v after a partial run", got)
	}
	time.Sleep(10 * time.Millisecond)
	ages := pendingAges(t, m)
	if ages["src.io/lib/b"] <= 0 || ages["src.io/lib/a"] != 0 {
		t.Errorf("pending ages %v: want lib/b waiting, lib/a at 0", ages)
	}

	// The next run copies lib/b: nothing waits, the run is a success.
	m.RunStarted()
	for _, r := range []engine.JobResult{{Job: job("lib/b", "1"), Action: engine.Copied}, {Job: job("lib/b", "2"), Action: engine.Copied}} {
		m.Job(r)
	}
	end := time.Now()
	if got := m.RunFinished(&engine.Result{Jobs: make([]engine.JobResult, 2), Summary: engine.Summary{Copied: 2}}, start, end); got != RunSuccess {
		t.Errorf("result %s, want success", got)
	}
	if got := testutil.ToFloat64(m.lastSuccess); got != float64(end.UnixNano())/1e9 {
		t.Errorf("last success %v, want %v", got, float64(end.UnixNano())/1e9)
	}
	if ages := pendingAges(t, m); ages["src.io/lib/b"] != 0 {
		t.Errorf("pending ages %v after everything was copied", ages)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues(RunSuccess)) + testutil.ToFloat64(m.runs.WithLabelValues(RunPartial)); got != 2 {
		t.Errorf("%v runs counted, want 2", got)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func pendingAges(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "imagesync_oldest_pending_age_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			out[s.GetLabel()[0].GetValue()] = s.GetGauge().GetValue()
		}
	}
	return out
}

func TestRequestsBoundedLabels(t *testing.T) {
	m := New("test")
	for i := range maxLabelValues + 20 {
		m.Request(fmt.Sprintf("r%d.example:5000", i), "GET", 200, nil)
	}
	m.Request("r0.example:5000", "GET", 429, nil)
	m.Request("r0.example:5000", "GET", 0, errors.New("reset"))
	m.Retry("r0.example:5000")
	if got := testutil.ToFloat64(m.requests.WithLabelValues(otherLabel, "2xx")); got != 20 {
		t.Errorf("other: %v requests, want 20", got)
	}
	for class, want := range map[string]float64{"2xx": 1, "4xx": 1, "error": 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("r0.example:5000", class)); got != want {
			t.Errorf("r0 %s: %v, want %v", class, got, want)
		}
	}
	if got := testutil.ToFloat64(m.throttled.WithLabelValues("r0.example:5000")); got != 1 {
		t.Errorf("429s: %v", got)
	}
	if got := testutil.ToFloat64(m.retries.WithLabelValues("r0.example:5000")); got != 1 {
		t.Errorf("retries: %v", got)
	}
}

func TestServe(t *testing.T) {
	m := New("test")
	s, err := Serve("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]string{"/metrics": "imagesync_runs_total{result=\"success\"} 0", "/healthz": "ok"} {
		resp, err := http.Get("http://" + s.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %q, want %q", path, resp.StatusCode, b, want)
		}
	}
	if _, err := Serve(s.Addr, m); err == nil || !strings.Contains(err.Error(), "--metrics-addr "+s.Addr) {
		t.Errorf("a taken port: %v", err)
	}
}
