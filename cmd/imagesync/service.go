package main

import (
	"github.com/imagesync/imagesync/sync/engine"
)

// Service are the flags of sync that make it a service: metrics and run
// notifications (watch mode's --every is SyncCmd's own).
type Service struct{}

// service is what a sync process runs beside its runs: it hears about each
// run (observer hooks) and passes it on.
type service struct {
	runs int
}

// startService starts what the flags ask for.
func (c *SyncCmd) startService(rc *runContext, s *session) (*service, error) {
	return &service{}, nil
}

func (v *service) close() {}

// runStarted is called before a run expands its rules.
func (v *service) runStarted() { v.runs++ }

// runFailed is called when a run could not start (its rules did not expand).
func (v *service) runFailed(err error) {}

// jobFinished is called once per finished job, from the engine's workers.
func (v *service) jobFinished(r engine.JobResult) {}

// runFinished is called when a run's engine is done.
func (v *service) runFinished(res *engine.Result) {}

// reloadFailed is called when watch mode kept the last good rules.
func (v *service) reloadFailed() {}
