package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/sync/config"
)

// errStoppedWaiting ends watch mode when a signal arrives between runs:
// nothing is in flight, so the process exits 0 at once.
var errStoppedWaiting = errors.New("stopped between runs")

// everyJitter is the share of --every by which each wait varies (±), so that
// many mirrors started together drift apart.
const everyJitter = 0.1

// checkWatch rejects watch-mode settings that cannot work, before anything
// is opened.
func (c *SyncCmd) checkWatch(rc *runContext) error {
	if c.Every == 0 && !rc.explicit["every"] {
		return nil
	}
	switch {
	case c.Every < config.MinEvery:
		return usageError("--every %s: must be at least %s (e.g. 30m, 1h)", c.Every, config.MinEvery)
	case c.KubeReport != "":
		return usageError("--every and --kube-report cannot go together: a Kubernetes Job runs once (use `job --schedule` for a CronJob)")
	}
	return nil
}

// every is the watch-mode interval: --every, else the config file's every:.
func (c *SyncCmd) every(rc *runContext, s *session) time.Duration {
	if rc.explicit["every"] {
		return c.Every
	}
	if s.config != nil && s.config.Every > 0 && c.KubeReport == "" {
		return s.config.Every
	}
	return 0
}

// nextWait is how long to wait before the next run: every after the start of
// the last one, ±everyJitter, and never negative (a run longer than every is
// followed at once by the next: runs never overlap).
func nextWait(every, took time.Duration, rnd func() float64) time.Duration {
	j := time.Duration((rnd()*2 - 1) * everyJitter * float64(every))
	return max(0, every+j-took)
}

// watch runs sync, waits, and runs again until a signal. The session (its
// connections, tokens, pacing and ledger) lives across runs; the rule and
// config files are read again before each run, and a broken edit keeps the
// last good rules. A signal during the wait ends the process at once with
// exit 0; during a run it acts as Ctrl-C does in a one-off run.
func (c *SyncCmd) watch(rc *runContext, s *session, svc *service, every time.Duration) error {
	s.log.Info("watch mode", "every", every.String())
	for n := 1; ; n++ {
		if n > 1 {
			if err := c.reload(rc, s); err != nil {
				svc.reloadFailed()
				s.log.Error("the config could not be read again: this run keeps the last good rules", "error", err)
			}
		}
		start := time.Now()
		_, err := c.once(rc, s, svc)
		if rc.env.interrupted() {
			return err
		}
		if err != nil {
			s.log.Error("run ended with errors", "run", n, "error", err)
		}
		if e := c.every(rc, s); e > 0 {
			every = e // every: edited (removed: keep watching as started)
		}
		wait := nextWait(every, time.Since(start), rand.Float64)
		s.log.Info("next run", "run", n+1, "in", wait.Round(time.Second).String(), "at", time.Now().Add(wait).Format(time.RFC3339))
		if stopped := c.wait(rc, wait); stopped {
			svc.stopped = true
			s.log.Info("stopped between runs", "runs", n)
			return errStoppedWaiting
		}
	}
}

// wait sleeps d, or returns true as soon as a signal arrives. rc.waiting
// is set meanwhile, and stays set when a signal ended the wait (the notice
// of an interrupted run must not be printed: the process just ends).
func (c *SyncCmd) wait(rc *runContext, d time.Duration) bool {
	if rc.waiting != nil {
		rc.waiting.Store(true)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-rc.env.interrupt:
		return true
	case <-t.C:
		if rc.env.interrupted() {
			return true
		}
	}
	if rc.waiting != nil {
		rc.waiting.Store(false)
	}
	return false
}

// reload reads the rule and config files again into the session. Nothing
// changes unless the whole load succeeds. Rules, credentials for
// repositories not opened yet, run settings of defaults: (proc, retries) and
// every: take effect; the client's per-host limits (max-conns, rate) stay as
// the process started.
func (c *SyncCmd) reload(rc *runContext, s *session) error {
	in := c.Inputs
	kc := s.keychain
	fresh := &session{keychain: &credentials.Chain{Fallback: kc.Fallback, CertDirs: kc.CertDirs, CAFiles: kc.CAFiles, Secrets: kc.Secrets}}
	warnings, skipped, err := in.load(rc, fresh)
	if err != nil {
		return err
	}
	if len(fresh.rules) == 0 {
		return fmt.Errorf("no rules: nothing to do")
	}
	for _, w := range warnings {
		s.log.Warn(w)
	}
	c.Inputs = in
	s.rules, s.config = fresh.rules, fresh.config
	kc.Files = fresh.keychain.Files
	s.skipped = nil
	s.reportSkipped(rc, skipped)
	return nil
}
