package main

import (
	"fmt"

	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/imagesync/imagesync/sync/rules"
)

// VerifyCmd is `imagesync verify`: does every destination hold what it should?
type VerifyCmd struct {
	Inputs
	Output  string `short:"o" enum:"table,json" default:"table" help:"Output: ${enum}."`
	Deep    bool   `help:"Download and re-hash every destination blob instead of checking it exists."`
	Offline bool   `help:"Compare the destinations with the ledger; do not contact the source (air-gapped mirrors)."`
}

// Run implements `imagesync verify`.
func (c *VerifyCmd) Run(rc *runContext) error {
	if c.Offline && c.NoLedger {
		return usageError("--offline compares with the ledger: it cannot go with --no-ledger")
	}
	s, err := c.open(rc)
	if err != nil {
		return err
	}
	defer s.Close()
	eng := s.engine(&c.Inputs, engine.Options{})
	defer eng.Close()
	var jobs []rules.Job
	var unchecked []engine.VerifyResult
	switch {
	case c.Offline:
		jobs, err = s.expandOffline(rc, eng)
		if err == nil {
			jobs, _ = s.selectShard(jobs, nil)
		}
	default:
		var failed []engine.JobResult
		jobs, failed, err = s.expand(rc, eng)
		if err == nil {
			jobs, failed = s.selectShard(jobs, failed)
		}
		// A rule whose source could not be listed is not "nothing to
		// check": each of its destinations is a job with an error problem.
		for _, f := range failed {
			s.log.Error("cannot verify", "source", f.Job.Source.String(), "error", f.Err)
			unchecked = append(unchecked, engine.VerifyResult{Job: f.Job, Problems: []engine.Problem{{Kind: engine.ProblemError, Ref: f.Job.Source.String(), Detail: f.Err.Error()}}})
		}
	}
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	v := report.NewVerification(append(unchecked, eng.Verify(rc.ctx, jobs, engine.VerifyOptions{Deep: c.Deep, Offline: c.Offline})...))
	if c.Output == "json" {
		err = v.WriteJSON(rc.stdout)
	} else {
		err = v.WriteTable(rc.stdout)
	}
	if err != nil {
		return err
	}
	if len(jobs) == 0 && len(unchecked) > 0 {
		return &exitError{code: exitAllFailed, err: fmt.Errorf("no source could be listed: nothing was verified")}
	}
	if n := v.Failed(); n > 0 {
		return &exitError{code: exitSomeFail, err: fmt.Errorf("%d of %d destinations differ or could not be checked", n, len(v.Jobs))}
	}
	return s.skippedError()
}
