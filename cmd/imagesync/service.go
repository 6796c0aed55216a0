package main

import (
	"time"

	"github.com/imagesync/imagesync/metrics"
	"github.com/imagesync/imagesync/sync/engine"
)

// Service are the flags of sync that make it a service: metrics and run
// notifications (watch mode's --every is SyncCmd's own).
type Service struct {
	MetricsAddr string `name:"metrics-addr" placeholder:"HOST:PORT" group:"Service" help:"Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz) while sync runs: all along in watch mode (:9090 listens on every interface, 127.0.0.1:9090 on loopback only)."`
}

// service is what a sync process runs beside its runs: it hears about each
// run (observer hooks) and passes it on to the metrics.
type service struct {
	metrics *metrics.Metrics // nil without --metrics-addr
	server  *metrics.Server
	start   time.Time // of the run in progress
}

// startService starts what the flags ask for, before the session opens (so
// that the client reports its requests to the metrics): a port that cannot
// be listened on is a usage error.
func (c *SyncCmd) startService(rc *runContext) (*service, error) {
	v := &service{}
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
	if v.metrics != nil {
		v.metrics.WatchClient(s.client)
		s.log.Info("serving metrics", "url", "http://"+v.server.Addr+"/metrics")
	}
}

func (v *service) close() {
	if v.server != nil {
		v.server.Close()
	}
}

// runStarted is called before a run expands its rules.
func (v *service) runStarted() {
	v.start = time.Now()
	if v.metrics != nil {
		v.metrics.RunStarted()
	}
}

// runFailed is called when a run could not start (its rules did not expand).
func (v *service) runFailed(error) {
	if v.metrics != nil {
		v.metrics.RunFinished(nil, v.start, time.Now())
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
	if v.metrics != nil {
		v.metrics.RunFinished(res, v.start, time.Now())
	}
}

// reloadFailed is called when watch mode kept the last good rules.
func (v *service) reloadFailed() {
	if v.metrics != nil {
		v.metrics.ReloadFailed()
	}
}
