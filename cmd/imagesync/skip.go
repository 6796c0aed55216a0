package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/imagesync/imagesync/sync/rules"
)

// --skip-invalid-rules: the rules a strict run would refuse the whole file
// for are reported with the same messages and set aside; the others run,
// and the run ends with exit 1.

// expand is eng.Expand, with the rules it sets aside (--skip-invalid-rules:
// the engine's Options.SetAside) reported at once.
func (s *session) expand(rc *runContext, eng *engine.Engine) ([]rules.Job, []engine.JobResult, error) {
	n := s.setAside()
	jobs, failed, err := eng.Expand(rc.ctx, s.rules)
	s.reportSetAside(rc, n)
	return jobs, failed, err
}

// expandOffline is eng.ExpandOffline (verify --offline), reported as expand.
func (s *session) expandOffline(rc *runContext, eng *engine.Engine) ([]rules.Job, error) {
	n := s.setAside()
	jobs, err := eng.ExpandOffline(s.rules)
	s.reportSetAside(rc, n)
	return jobs, err
}

// setAside counts the errors of rules set aside so far.
func (s *session) setAside() int {
	if s.aside == nil {
		return 0
	}
	return len(s.aside.Errs)
}

// reportSetAside reports the rules set aside since setAside said n.
func (s *session) reportSetAside(rc *runContext, n int) {
	if s.aside != nil && len(s.aside.Errs) > n {
		s.reportSkipped(rc, s.aside.Errs[n:])
	}
}

// reportSkipped prints the errors of rules set aside, one per line, as a
// strict run would (on stderr, and in the --log file too), and remembers
// them for skippedError.
func (s *session) reportSkipped(rc *runContext, errs rules.ErrorList) {
	lines := flatten(errs)
	if len(lines) == 0 {
		return
	}
	s.skipped = append(s.skipped, lines...)
	w := rc.stderr
	if rc.global.Log != "" && s.out != nil {
		w = io.MultiWriter(rc.stderr, s.out)
	}
	fmt.Fprintf(w, "%s: --skip-invalid-rules: setting aside %d invalid rule(s); the others run:\n", rc.personality.Name, countRules(lines))
	for _, e := range lines {
		fmt.Fprintln(w, e)
	}
}

// skippedError is nil when no rule was set aside, else the exit-1 error
// the run ends with.
func (s *session) skippedError() error {
	if len(s.skipped) == 0 && len(s.clusterSkipped) > 0 {
		return &exitError{code: exitSomeFail, err: fmt.Errorf("%d image reference(s) of the cluster were skipped (--from-cluster); see the warnings above", len(s.clusterSkipped))}
	}
	if len(s.skipped) == 0 {
		return nil
	}
	return &exitError{code: exitSomeFail, err: fmt.Errorf("%d invalid rule(s) were skipped (--skip-invalid-rules); see the errors above", countRules(s.skipped))}
}

// skippedImages lists the cluster's images --from-cluster left out, for -o json.
func (s *session) skippedImages() []report.SkippedImage {
	var out []report.SkippedImage
	for _, k := range s.clusterSkipped {
		out = append(out, report.SkippedImage{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Container: k.Container.Container, Image: k.Image, Error: k.Reason})
	}
	return out
}

// flatten turns nested error lists into their leaves.
func flatten(errs []error) []error {
	var out []error
	for _, e := range errs {
		if list, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, flatten(list.Unwrap())...)
			continue
		}
		out = append(out, e)
	}
	return out
}

// countRules counts the rules (file and key) the errors are about.
func countRules(errs []error) int {
	rulesSeen := map[[2]string]bool{}
	n := 0
	for _, e := range errs {
		var ce *cfgfile.Error
		if !errors.As(e, &ce) || ce.Key == "" {
			n++
			continue
		}
		rulesSeen[[2]string{ce.File, ce.Key}] = true
	}
	return n + len(rulesSeen)
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
