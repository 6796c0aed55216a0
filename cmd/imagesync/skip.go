package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

// --skip-invalid-rules: the rules a strict run would refuse the whole file
// for are reported with the same messages and set aside; the others run,
// and the run ends with exit 1.

// expand is eng.Expand, or with --skip-invalid-rules eng.ExpandSkipping
// with the rules it sets aside reported at once.
func (s *session) expand(rc *runContext, in *Inputs, eng *engine.Engine) ([]rules.Job, []engine.JobResult, error) {
	if !in.SkipInvalidRules {
		return eng.Expand(rc.ctx, s.rules)
	}
	jobs, failed, skipped := eng.ExpandSkipping(rc.ctx, s.rules)
	s.reportSkipped(rc, skipped)
	return jobs, failed, nil
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
	if len(s.skipped) == 0 {
		return nil
	}
	return &exitError{code: exitSomeFail, err: fmt.Errorf("%d invalid rule(s) were skipped (--skip-invalid-rules); see the errors above", countRules(s.skipped))}
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
