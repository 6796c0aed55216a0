package engine

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// Expand turns rules into jobs. Tags are listed only for rules that need a
// listing (all tags, regex); a literal tag or digest costs no request. A rule
// whose listing fails becomes failed results (one per destination); rule
// errors that only a listing reveals (a single-tag rename of a regex that
// matched two tags) are returned together as a configuration error. With
// Options.SetAside (--skip-invalid-rules), such a rule, a rule with a bad
// image layout and both rules of a destination conflict are set aside
// instead (their errors added to it), and the other rules' jobs returned.
func (e *Engine) Expand(ctx context.Context, rs []rules.Rule) ([]rules.Job, []JobResult, error) {
	jobs, failed, errs := e.expand(ctx, rs)
	if len(errs) > 0 {
		if e.opt.SetAside == nil {
			return nil, nil, errs
		}
		e.opt.SetAside.Add(errs...)
	}
	return jobs, failed, nil
}

func (e *Engine) expand(ctx context.Context, rs []rules.Rule) ([]rules.Job, []JobResult, rules.ErrorList) {
	skip := e.opt.SetAside != nil
	type listing struct {
		tags, invalid []string
		err           error
	}
	// The first Ctrl-C stops the listings too, not only the copies.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if e.opt.Stop != nil {
		go func() {
			select {
			case <-e.opt.Stop:
				cancel(errListingInterrupted)
			case <-ctx.Done():
			}
		}()
	}
	e.prune = pruneState{}
	rs, discovered, discoverErrs := e.discover(ctx, rs)
	if len(discoverErrs) > 0 && !skip {
		return nil, nil, discoverErrs
	}
	listed := make([]listing, len(rs))
	names, bad, layoutErrs := e.openLayouts(rs)
	if len(layoutErrs) > 0 && !skip {
		return nil, nil, layoutErrs
	}
	layoutErrs = append(discoverErrs, layoutErrs...)
	var g errgroup.Group
	g.SetLimit(e.opt.Concurrency)
	for i := range rs {
		r := &rs[i]
		if n, ok := names[i]; ok {
			listed[i].tags = n
			continue
		}
		if bad[i] || !r.NeedsTagList() || ownTruthAt(r.Source.Registry) {
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil { // interrupted while waiting for a slot
				listed[i].err = context.Cause(ctx)
				return nil
			}
			repo, err := e.c.Repo(ctx, r.Source.Registry, r.Source.Repository, false)
			if err == nil {
				listed[i].tags, listed[i].invalid, err = repo.Tags(ctx)
				if err != nil {
					if ctx.Err() != nil {
						err = context.Cause(ctx)
					}
					err = e.explain(repo, err)
				}
			}
			listed[i].err = err
			return nil
		})
	}
	_ = g.Wait() // errors are per listing

	var jobs []rules.Job
	failed := discovered
	errs := layoutErrs // set aside, with --skip-invalid-rules
	for i := range rs {
		r := &rs[i]
		if bad[i] {
			e.blockPrune(r)
			continue
		}
		if err := listed[i].err; err != nil {
			e.blockPrune(r)
			for _, d := range r.Destinations {
				failed = append(failed, JobResult{
					Job:    rules.Job{Source: rules.Ref{Registry: r.Source.Registry, Repository: r.Source.Repository}, Destination: rules.Ref{Registry: d.Registry, Repository: d.Repository}, Rule: r},
					Action: Failed,
					Err:    fmt.Errorf("listing tags of %s/%s: %w", r.Source.Registry, r.Source.Repository, err),
				})
			}
			continue
		}
		js, err := r.Expand(listed[i].tags)
		if err != nil {
			e.blockPrune(r)
			errs = append(errs, err)
			continue
		}
		e.notePrune(r, len(listed[i].tags), js)
		failed = append(failed, e.invalidTags(r, listed[i].invalid)...)
		if len(js) == 0 {
			e.log.Warn("rule matched no tag", "file", r.File, "key", r.Key)
		}
		jobs = append(jobs, js...)
	}
	if skip {
		e.opt.SetAside.Add(errs...) // in the order strict mode reports them: these, then conflicts
		errs = nil
	}
	jobs, err := rules.CheckJobs(jobs, e.opt.SetAside)
	if err != nil {
		errs = append(errs, err)
	}
	return jobs, failed, errs
}

// errListingInterrupted ends a tag listing under way at the first interrupt.
var errListingInterrupted = errors.New("interrupted (Ctrl-C or SIGTERM)")

// invalidTags reports the tags a registry listed that break the tag grammar:
// a warning each, naming the registry and the tag, and a failed job per
// destination when the rule selects the tag (all tags, or a regex that
// matches it). They are never copied; the rest of the rule goes on.
// A hostile listing may hold thousands of invalid tags: past this many per
// rule they are reported together, in one warning and one failed job per
// destination.
const maxInvalidTagReports = 100

func (e *Engine) invalidTags(r *rules.Rule, invalid []string) []JobResult {
	var failed []JobResult
	fail := func(err error) {
		for _, d := range r.Destinations {
			failed = append(failed, JobResult{
				// The tag is not put into the job's references: it would be
				// printed as if it named an image.
				Job:    rules.Job{Source: rules.Ref{Registry: r.Source.Registry, Repository: r.Source.Repository}, Destination: rules.Ref{Registry: d.Registry, Repository: d.Repository}, Rule: r},
				Action: Failed,
				Err:    client.Permanent(err),
			})
		}
	}
	seen := map[string]bool{}
	reported, more := 0, 0
	for _, t := range invalid {
		if seen[t] {
			continue
		}
		seen[t] = true
		selected := r.Source.Kind != rules.TagRegex || (r.Source.Regex != nil && r.Source.Regex.FindStringIndex(t) != nil)
		if reported >= maxInvalidTagReports {
			if selected {
				more++
			}
			continue
		}
		reported++
		e.log.Warn("registry listed an invalid tag: not copied", "registry", r.Source.Registry, "repository", r.Source.Repository, "tag", t)
		if selected {
			fail(fmt.Errorf("%s/%s lists the tag %q, which is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}): not copied", r.Source.Registry, r.Source.Repository, t))
		}
	}
	if more > 0 {
		e.log.Warn("registry listed more invalid tags: not copied", "registry", r.Source.Registry, "repository", r.Source.Repository, "count", more)
		fail(fmt.Errorf("%s/%s lists %d more invalid tags: not copied", r.Source.Registry, r.Source.Repository, more))
	}
	return failed
}
