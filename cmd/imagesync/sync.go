package main

import (
	"fmt"
	"io"
	"time"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/report"
)

// SyncCmd is `imagesync sync`, with image-syncer's flags.
type SyncCmd struct {
	Inputs
	Force   bool `help:"Push manifests even when the destination already has the digest."`
	Refresh bool `help:"Ignore the ledger for decisions (ask every destination) but record the results in it."`
	TrustLedger

	OutputSuccessImages string        `type:"path" placeholder:"FILE" help:"Write the images now in sync (copied or already there), in the images-file shape."`
	OutputFailedImages  string        `type:"path" placeholder:"FILE" help:"Write the failed images: source → destination → reason."`
	OutputImagesFormat  string        `type:"imagesformat" enum:"json,yaml" default:"yaml" help:"Format of the output image files: ${enum} (any case; yml means yaml)."`
	Output              string        `short:"o" enum:"text,json" default:"text" help:"Final report on stdout: ${enum} (json: one document with every job; logs stay on stderr)."`
	Every               time.Duration `placeholder:"DURATION" group:"Service" help:"Watch mode: run again DURATION after each run started (±10% jitter; at least 1s), until SIGTERM or Ctrl-C; the rule and config files are re-read before each run (also every: in -f FILE)."`
	Service
	KubeReport string `name:"kube-report" placeholder:"JOB" group:"Sharding" help:"Also write the summary and failed jobs to ConfigMap JOB-shard-I (I: this shard, else 0) through the Kubernetes API, for status JOB."`
}

// Run implements `imagesync sync`: one run, or with --every (every:) one
// run after another until a signal (see watch.go).
func (c *SyncCmd) Run(rc *runContext) error {
	if err := c.TrustLedger.check(&c.Inputs); err != nil {
		return err
	}
	if err := c.checkWatch(rc); err != nil {
		return err
	}
	svc, err := c.startService(rc)
	if err != nil {
		return err
	}
	defer svc.close()
	s, err := c.open(rc)
	if err != nil {
		return err
	}
	defer s.Close()
	svc.opened(s)
	if every := c.every(rc, s); every > 0 {
		return c.watch(rc, s, svc, every)
	}
	_, err = c.once(rc, s, svc)
	return err
}

// once is one sync run over the session's rules.
func (c *SyncCmd) once(rc *runContext, s *session, svc *service) (*engine.Result, error) {
	eng := s.engine(&c.Inputs, engine.Options{Force: c.Force, Refresh: c.Refresh, TrustLedger: c.TrustLedger.effective(rc, &c.Inputs, s)})
	defer eng.Close()
	svc.runStarted()
	jobs, failed, err := s.expand(rc, eng)
	if err != nil {
		err = &exitError{code: exitUsage, err: err}
		svc.runFailed(err)
		return nil, err
	}
	jobs, failed = s.selectShard(jobs, failed)
	progress := report.NewProgress(s.console, len(jobs)+len(failed), progressOptions(rc))
	eng.Observe(func(r engine.JobResult) { progress.Result(r); svc.jobFinished(r) }, nil, nil)
	eng.ObserveProgress(progress.Event)
	pulls := pullCounts(s.client)
	res := eng.Sync(rc.ctx, jobs, failed)
	for _, r := range res.Jobs {
		if r.Late { // reported as done before its archive failed: say why now
			if rc.global.LogFormat == "json" {
				s.console.Println(report.JobLogLine(r))
			} else {
				s.console.Println(report.Line(r))
			}
		}
	}
	progress.Finish()
	svc.runFinished(res)

	summaryOut := io.Writer(rc.stderr)
	if rc.global.Log != "" {
		summaryOut = io.MultiWriter(rc.stderr, s.out)
	}
	quotas := pullQuotas(s.client, pulls)
	if rc.global.LogFormat == "json" {
		fmt.Fprintln(credentials.NewRedactor(summaryOut, s.keychain.Secrets), report.SummaryLogLine(res))
		if len(quotas) > 0 {
			fmt.Fprintln(credentials.NewRedactor(summaryOut, s.keychain.Secrets), report.LogLine("INFO", "pull quota", map[string]any{"pullQuota": quotas}))
		}
	} else {
		report.Summary(credentials.NewRedactor(summaryOut, s.keychain.Secrets), res.Summary)
		report.WriteRunQuota(credentials.NewRedactor(summaryOut, s.keychain.Secrets), quotas)
	}

	if c.Output == "json" {
		rep := report.NewSyncReport(res)
		rep.SkippedRules = report.SkippedRules(s.skipped)
		rep.PullQuota = quotas
		rep.SkippedImages = s.skippedImages()
		rep.Summary.SkippedImages = len(rep.SkippedImages)
		if err := rep.WriteJSON(rc.stdout); err != nil {
			return res, err
		}
	}
	if c.KubeReport != "" {
		if err := c.writeKubeReport(rc, s, res); err != nil {
			s.log.Error("writing the shard report", "error", err)
			return res, &exitError{code: max(exitSomeFail, exitCode(exitFor(res.Summary.Failed, len(res.Jobs)))), err: err}
		}
	}
	if c.OutputSuccessImages != "" {
		if err := report.WriteFileRedacted(c.OutputSuccessImages, c.OutputImagesFormat, report.SuccessImages(res.Jobs), s.keychain.Secrets.Redact); err != nil {
			s.log.Error("writing success images", "error", err)
		}
	}
	if c.OutputFailedImages != "" {
		if err := report.WriteFileRedacted(c.OutputFailedImages, c.OutputImagesFormat, report.FailedImages(res.Jobs), s.keychain.Secrets.Redact); err != nil {
			s.log.Error("writing failed images", "error", err)
		}
	}
	return res, firstError(exitFor(res.Summary.Failed, len(res.Jobs)), s.skippedError())
}
