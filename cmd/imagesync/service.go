package main

import (
	"net/url"
	"time"

	"github.com/imagesync/imagesync/metrics"
	"github.com/imagesync/imagesync/notify"
	"github.com/imagesync/imagesync/sync/engine"
)

// Service are the flags of sync that make it a service: metrics and run
// notifications (watch mode's --every is SyncCmd's own).
type Service struct {
	Notify      []string `placeholder:"URL" sep:"none" group:"Service" help:"POST one CloudEvents 1.0 JSON event to URL when each run ends (result, summary, failed images, duration), retried with backoff in the background; repeatable."`
	MetricsAddr string   `name:"metrics-addr" placeholder:"HOST:PORT" group:"Service" help:"Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz) while sync runs: all along in watch mode (:9090 listens on every interface, 127.0.0.1:9090 on loopback only)."`
}

// service is what a sync process runs beside its runs: it hears about each
// run (observer hooks) and passes it on to the metrics.
type service struct {
	metrics *metrics.Metrics // nil without --metrics-addr
	server  *metrics.Server
	start   time.Time // of the run in progress
	run     int       // runs started
	urls    []*url.URL
	notify  *notify.Notifier // nil without --notify
	stopped bool             // a signal ended watch mode between runs: deliver nothing more
}

// notifyCloseWait is how long a process that is ending waits for the
// notifications still being delivered (a one-off run's event).
const notifyCloseWait = 15 * time.Second

// notifyStopWait is that wait when a signal ended watch mode between runs:
// the process ends at once, a POST being answered just then still lands.
const notifyStopWait = 500 * time.Millisecond

// startService starts what the flags ask for, before the session opens (so
// that the client reports its requests to the metrics): a port that cannot
// be listened on is a usage error.
func (c *SyncCmd) startService(rc *runContext) (*service, error) {
	v := &service{}
	for _, raw := range c.Notify {
		u, err := notify.ParseURL(raw, rc.secrets)
		if err != nil {
			return nil, usageError("%v", err)
		}
		v.urls = append(v.urls, u)
	}
	if c.MetricsAddr != "" {
		v.metrics = metrics.New(version)
		srv, err := metrics.Serve(c.MetricsAddr, v.metrics)
		if err != nil {
			return nil, usageError("%v", err)
		}
		v.server = srv
		rc.clientObserver = v.metrics
	}
	return v, nil
}

// opened is called once the session is open.
func (v *service) opened(s *session) {
	if len(v.urls) > 0 {
		v.notify = notify.New(v.urls, notify.Options{Secrets: s.keychain.Secrets, Logger: s.log})
	}
	if v.metrics != nil {
		v.metrics.WatchClient(s.client)
		s.log.Info("serving metrics", "url", "http://"+v.server.Addr+"/metrics")
	}
}

func (v *service) close() {
	if v.notify != nil {
		wait := notifyCloseWait
		if v.stopped {
			wait = notifyStopWait
		}
		v.notify.Close(wait)
	}
	if v.server != nil {
		v.server.Close()
	}
}

// runStarted is called before a run expands its rules.
func (v *service) runStarted() {
	v.start = time.Now()
	v.run++
	if v.metrics != nil {
		v.metrics.RunStarted()
	}
}

// runFailed is called when a run could not start (its rules did not expand).
func (v *service) runFailed(err error) {
	end := time.Now()
	if v.metrics != nil {
		v.metrics.RunFinished(nil, v.start, end)
	}
	if v.notify != nil {
		d := v.runData(nil, end)
		d.Error = err.Error()
		v.notify.Send(v.notify.NewEvent(d))
	}
}

// jobFinished is called once per finished job, from the engine's workers.
func (v *service) jobFinished(r engine.JobResult) {
	if v.metrics != nil {
		v.metrics.Job(r)
	}
}

// runFinished is called when a run's engine is done.
func (v *service) runFinished(res *engine.Result) {
	end := time.Now()
	if v.metrics != nil {
		v.metrics.RunFinished(res, v.start, end)
	}
	if v.notify != nil {
		v.notify.Send(v.notify.NewEvent(v.runData(res, end)))
	}
}

// runData is what a notification says about a run (nil res: it could not
// start).
func (v *service) runData(res *engine.Result, end time.Time) notify.RunData {
	d := notify.RunData{Run: v.run, Result: metrics.RunResult(res), Started: v.start.UTC(), Finished: end.UTC(),
		DurationSeconds: end.Sub(v.start).Seconds(), Failed: []notify.Failure{}}
	if res == nil {
		return d
	}
	s := res.Summary
	d.Summary = notify.Summary{Copied: s.Copied, Skipped: s.Skipped, Filtered: s.Filtered, Failed: s.Failed, NotStarted: s.NotStarted,
		Bytes: s.Bytes, BlobsUploaded: s.BlobsUploaded, BlobsMounted: s.BlobsMounted, Requests: s.Requests, Retries: s.Retries}
	var fs []notify.Failure
	for _, r := range res.Jobs {
		if r.Action != engine.Failed {
			continue
		}
		f := notify.Failure{Source: r.Job.Source.String(), Destination: r.Job.Destination.String(), Error: "failed"}
		if r.Err != nil {
			f.Error = r.Err.Error()
		}
		fs = append(fs, f)
	}
	if fs != nil {
		d.Failed, d.FailedOmitted = notify.Failures(fs)
	}
	return d
}

// reloadFailed is called when watch mode kept the last good rules.
func (v *service) reloadFailed() {
	if v.metrics != nil {
		v.metrics.ReloadFailed()
	}
}
