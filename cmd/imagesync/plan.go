package main

import (
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/report"
)

// PlanCmd is `imagesync plan`: the engine stopped after its decisions.
type PlanCmd struct {
	Inputs
	Output           string `short:"o" enum:"table,wide,json" default:"table" help:"Output: ${enum} (table fits the terminal, short digests; wide: whole references and digests)."`
	DetailedExitcode bool   `name:"detailed-exitcode" help:"Exit 0 when nothing is to do, 4 when a sync would copy or update something."`

	TrustLedger
}

// Run implements `imagesync plan`.
func (c *PlanCmd) Run(rc *runContext) error {
	c.readOnlyLedger = true // plan writes nothing, the ledger included
	if err := c.TrustLedger.check(&c.Inputs); err != nil {
		return err
	}
	s, err := c.open(rc)
	if err != nil {
		return err
	}
	defer s.Close()
	eng := s.engine(&c.Inputs, engine.Options{DryRun: true, TrustLedger: c.TrustLedger.effective(rc, &c.Inputs, s)})
	defer eng.Close()
	jobs, failed, err := s.expand(rc, eng)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	jobs, failed = s.selectShard(jobs, failed)
	pulls := pullCounts(s.client)
	res := eng.Sync(rc.ctx, jobs, failed)
	p := report.NewPlan(res)
	p.PullQuota = pullQuotas(s.client, pulls)
	p.AddFilters(eng.Rules(s.rules))
	p.SkippedRules = report.SkippedRules(s.skipped)
	p.SkippedImages = s.skippedImages()
	p.Summary.SkippedImages = len(p.SkippedImages)
	if c.Output == "json" {
		err = p.WriteJSON(rc.stdout)
	} else {
		err = p.WriteTableFit(rc.stdout, rc.cols(), c.Output == "wide")
	}
	if err != nil {
		return err
	}
	if err := firstError(exitFor(p.Summary.Error, len(p.Jobs)), s.skippedError()); err != nil {
		return err
	}
	if c.DetailedExitcode && p.Pending() {
		return &exitError{code: exitPending}
	}
	return nil
}
