// Package metrics exposes a sync process's runs to Prometheus (the
// Prometheus Go client): runs by result, images by result, bytes uploaded
// and mounted, requests per registry host and status class, retries, 429s,
// each host's learned pace and pull quota, run durations, the time of the
// last successful run and, per rule, the age of the oldest image not yet
// mirrored. Label values are bounded: registry hosts and rule sources (each
// capped at maxLabelValues, the rest counted as "other"), result and status
// class names; never a tag or a digest.
package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

// maxLabelValues bounds the distinct values of the registry and rule labels.
const maxLabelValues = 100

// otherLabel stands for every value past maxLabelValues.
const otherLabel = "other"

// Run results (imagesync_runs_total's result label).
const (
	RunSuccess     = "success"     // every job in sync
	RunPartial     = "partial"     // some jobs failed
	RunFailed      = "failed"      // every job failed, or the run could not start
	RunInterrupted = "interrupted" // SIGTERM or Ctrl-C
)

// Metrics are one process's metrics, in a registry of their own.
type Metrics struct {
	reg *prometheus.Registry

	runs          *prometheus.CounterVec
	images        *prometheus.CounterVec
	uploadedBytes prometheus.Counter
	mountedBytes  prometheus.Counter
	blobs         *prometheus.CounterVec
	requests      *prometheus.CounterVec
	retries       *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	duration      prometheus.Histogram
	lastSuccess   prometheus.Gauge
	lastRun       prometheus.Gauge
	running       prometheus.Gauge
	reloadFails   prometheus.Counter

	hostsMu sync.Mutex
	hosts   map[string]bool
	status  func() []client.HostStatus // the client's hosts, read at scrape time

	pendingMu sync.Mutex
	rules     map[string]bool      // rule label values in use
	pending   map[string]time.Time // job key → when first seen not in sync
	ruleOf    map[string]string    // job key → rule label
	seen      map[string]bool      // job keys of the run in progress
}

// New returns the metrics of a process of this version.
func New(version string) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		hosts:   map[string]bool{},
		rules:   map[string]bool{},
		pending: map[string]time.Time{},
		ruleOf:  map[string]string{},
		seen:    map[string]bool{},
	}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_runs_total",
		Help: "Sync runs finished, by result: success (every job in sync), partial (some jobs failed), failed (every job failed, or the run could not start), interrupted."}, []string{"result"})
	m.images = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_images_total",
		Help: "Image jobs (source → destination) finished, by result: copied, skipped (already in sync), filtered (no platform matched), failed, not_started (the run was interrupted first)."}, []string{"result"})
	m.uploadedBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_uploaded_bytes_total", Help: "Blob bytes uploaded to destinations."})
	m.mountedBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_mounted_bytes_total", Help: "Blob bytes a destination registry mounted from another of its repositories instead of an upload."})
	m.blobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_blobs_total", Help: "Blobs brought to destinations, by how: uploaded or mounted."}, []string{"how"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_requests_total",
		Help: "HTTP requests sent (each attempt), by registry host and status class (2xx, 3xx, 4xx, 5xx, or error when no answer came)."}, []string{"registry", "status_class"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_retries_total", Help: "Requests repeated after a transient failure, by registry host."}, []string{"registry"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imagesync_rate_limited_total", Help: "429 Too Many Requests answers, by registry host."}, []string{"registry"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imagesync_run_duration_seconds", Help: "Duration of sync runs.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagesync_last_success_timestamp_seconds", Help: "When the last run that left every job in sync ended (Unix time); 0 before the first."})
	m.lastRun = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagesync_last_run_timestamp_seconds", Help: "When the last run ended, whatever its result (Unix time); 0 before the first."})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "imagesync_run_in_progress", Help: "1 while a run is in progress, 0 between runs (watch mode)."})
	m.reloadFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "imagesync_config_reload_failures_total", Help: "Watch mode: re-reads of the rule or config files that failed (the last good rules were kept)."})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imagesync_build_info", Help: "Always 1: the version of imagesync serving these metrics."}, []string{"version"})
	info.WithLabelValues(version).Set(1)
	for _, c := range []prometheus.Collector{m.runs, m.images, m.uploadedBytes, m.mountedBytes, m.blobs, m.requests, m.retries, m.throttled,
		m.duration, m.lastSuccess, m.lastRun, m.running, m.reloadFails, info, hostCollector{m}, pendingCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, r := range []string{RunSuccess, RunPartial, RunFailed, RunInterrupted} {
		m.runs.WithLabelValues(r) // present from the start: rate() and absent() work on them
	}
	for _, r := range []string{"copied", "skipped", "filtered", "failed", "not_started"} {
		m.images.WithLabelValues(r)
	}
	for _, h := range []string{"uploaded", "mounted"} {
		m.blobs.WithLabelValues(h)
	}
	return m
}

// Registry is the Prometheus registry the metrics are in (tests gather it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WatchClient reads each host's learned pace and pull quota from c at
// scrape time.
func (m *Metrics) WatchClient(c *client.Client) { m.status = c.Hosts }

// host bounds the registry label.
func (m *Metrics) host(h string) string {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	if m.hosts[h] {
		return h
	}
	if len(m.hosts) >= maxLabelValues {
		return otherLabel
	}
	m.hosts[h] = true
	return h
}

// Request implements client.Observer.
func (m *Metrics) Request(host, _ string, status int, _ error) {
	host = m.host(host)
	class := "error"
	if status >= 100 && status < 600 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.requests.WithLabelValues(host, class).Inc()
	if status == http.StatusTooManyRequests {
		m.throttled.WithLabelValues(host).Inc()
	}
}

// Retry implements client.Observer.
func (m *Metrics) Retry(host string) { m.retries.WithLabelValues(m.host(host)).Inc() }

var _ client.Observer = (*Metrics)(nil)

// RunStarted notes that a run starts.
func (m *Metrics) RunStarted() {
	m.running.Set(1)
	m.pendingMu.Lock()
	m.seen = map[string]bool{}
	m.pendingMu.Unlock()
}

// Job counts one finished job, as it finishes (from the engine's workers).
func (m *Metrics) Job(r engine.JobResult) {
	if r.Subject != "" {
		return // a referrer travels with its image
	}
	result := string(r.Action)
	if r.NotStarted {
		result = "not_started"
	}
	switch r.Action {
	case engine.Copied, engine.Skipped, engine.Filtered, engine.Failed:
		m.images.WithLabelValues(result).Inc()
	default:
		return // plan's actions
	}
	k := jobKey(r.Job)
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	m.seen[k] = true
	rule := m.rule(r.Job.Rule, r.Job.Source) // every rule has a series, 0 when all is mirrored
	if r.Action == engine.Failed {
		if _, ok := m.pending[k]; !ok {
			m.pending[k] = time.Now()
			m.ruleOf[k] = rule
		}
		return
	}
	delete(m.pending, k)
	delete(m.ruleOf, k)
}

// RunFinished counts a finished run (nil res: it could not start) and
// returns its result label.
func (m *Metrics) RunFinished(res *engine.Result, start, end time.Time) string {
	m.running.Set(0)
	m.lastRun.Set(float64(end.UnixNano()) / 1e9)
	m.duration.Observe(end.Sub(start).Seconds())
	result := RunResult(res)
	m.runs.WithLabelValues(result).Inc()
	if res == nil {
		return result
	}
	if !res.Summary.Interrupted {
		// Jobs no run produces any more (a rule removed, a tag gone) are
		// not waiting to be mirrored.
		m.pendingMu.Lock()
		for k := range m.pending {
			if !m.seen[k] {
				delete(m.pending, k)
				delete(m.ruleOf, k)
			}
		}
		m.pendingMu.Unlock()
	}
	s := res.Summary
	m.uploadedBytes.Add(float64(s.Bytes))
	m.mountedBytes.Add(float64(s.BytesMounted))
	m.blobs.WithLabelValues("uploaded").Add(float64(s.BlobsUploaded))
	m.blobs.WithLabelValues("mounted").Add(float64(s.BlobsMounted))
	if result == RunSuccess {
		m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	}
	return result
}

// RunResult names a run's result (nil: the run could not start).
func RunResult(res *engine.Result) string {
	switch {
	case res == nil:
		return RunFailed
	case res.Summary.Interrupted:
		return RunInterrupted
	case res.Summary.Failed == 0:
		return RunSuccess
	case res.Summary.Failed+res.Summary.NotStarted >= len(res.Jobs):
		return RunFailed
	default:
		return RunPartial
	}
}

// ReloadFailed counts a failed re-read of the configuration.
func (m *Metrics) ReloadFailed() { m.reloadFails.Inc() }

// jobKey identifies a job across runs (a source tag moving to another digest
// is the same pending job).
func jobKey(j rules.Job) string { return j.Source.String() + "\x00" + j.Destination.String() }

// rule is the rule label of a job: its rule's source repository (bounded;
// no tag, no digest). Called with pendingMu held.
func (m *Metrics) rule(r *rules.Rule, src rules.Ref) string {
	v := src.Registry + "/" + src.Repository
	if r != nil {
		v = r.Source.Registry + "/" + r.Source.Repository
	}
	if rules.IsLayout(src.Registry) {
		v = src.Registry
	}
	if m.rules[v] {
		return v
	}
	if len(m.rules) >= maxLabelValues {
		return otherLabel
	}
	m.rules[v] = true
	return v
}

var (
	paceDesc = prometheus.NewDesc("imagesync_learned_rate_requests_per_second",
		"The request rate a registry host was learned to take from its 429s (0: never refused, not paced).", []string{"registry"}, nil)
	quotaDesc = prometheus.NewDesc("imagesync_pull_quota_remaining",
		"Pulls left in the registry's window as its ratelimit-remaining header says (Docker Hub).", []string{"registry"}, nil)
	quotaLimitDesc = prometheus.NewDesc("imagesync_pull_quota_limit",
		"Pulls allowed per window as the registry's ratelimit-limit header says (Docker Hub).", []string{"registry"}, nil)
	pendingDesc = prometheus.NewDesc("imagesync_oldest_pending_age_seconds",
		"Per rule (its source repository): how long the oldest image this process found not in sync has been waiting to be mirrored (0: all mirrored).", []string{"rule"}, nil)
)

// hostCollector reads the client's hosts at scrape time.
type hostCollector struct{ m *Metrics }

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- paceDesc
	ch <- quotaDesc
	ch <- quotaLimitDesc
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	if c.m.status == nil {
		return
	}
	for _, h := range c.m.status() {
		host := c.m.host(h.Host)
		if host == otherLabel {
			continue
		}
		ch <- prometheus.MustNewConstMetric(paceDesc, prometheus.GaugeValue, h.Pace, host)
		if h.Remaining >= 0 {
			ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(h.Remaining), host)
		}
		if h.Limit >= 0 {
			ch <- prometheus.MustNewConstMetric(quotaLimitDesc, prometheus.GaugeValue, float64(h.Limit), host)
		}
	}
}

// pendingCollector computes the per-rule age of the oldest pending image at
// scrape time (it grows between runs).
type pendingCollector struct{ m *Metrics }

func (c pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (c pendingCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := time.Now()
	m.pendingMu.Lock()
	oldest := map[string]time.Time{}
	for rule := range m.rules {
		oldest[rule] = time.Time{}
	}
	for k, t := range m.pending {
		r := m.ruleOf[k]
		if o := oldest[r]; o.IsZero() || t.Before(o) {
			oldest[r] = t
		}
	}
	m.pendingMu.Unlock()
	for rule, t := range oldest {
		age := 0.0
		if !t.IsZero() {
			age = now.Sub(t).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, age, rule)
	}
}

// Handler serves /metrics (the Prometheus text format) and /healthz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	return mux
}

// Server is the metrics endpoint, listening.
type Server struct {
	Addr string // the address it listens on (the port chosen for :0)
	srv  *http.Server
	done chan struct{}
}

// Serve listens on addr (HOST:PORT) and serves the metrics until Close.
func Serve(addr string, m *Metrics) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return s, nil
}

// Close stops the server, letting a scrape in flight finish (up to 5 s).
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
