package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/imagesync/imagesync/sync/rules"
)

// Expand turns rules into jobs. Tags are listed only for rules that need a
// listing (all tags, regex); a literal tag or digest costs no request. A rule
// whose listing fails becomes failed results (one per destination); rule
// errors that only a listing reveals (a single-tag rename of a regex that
// matched two tags) are returned together as a configuration error.
func (e *Engine) Expand(ctx context.Context, rs []rules.Rule) ([]rules.Job, []JobResult, error) {
	type listing struct {
		tags []string
		err  error
	}
	listed := make([]listing, len(rs))
	var wg sync.WaitGroup
	limit := make(chan struct{}, e.opt.Concurrency)
	for i := range rs {
		r := &rs[i]
		if !r.NeedsTagList() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			limit <- struct{}{}
			defer func() { <-limit }()
			repo, err := e.c.Repo(ctx, r.Source.Registry, r.Source.Repository, false)
			if err == nil {
				listed[i].tags, err = repo.Tags(ctx)
				if err != nil {
					err = e.explain(repo, err)
				}
			}
			listed[i].err = err
		}()
	}
	wg.Wait()

	var jobs []rules.Job
	var failed []JobResult
	var errs rules.ErrorList
	for i := range rs {
		r := &rs[i]
		if err := listed[i].err; err != nil {
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
			errs = append(errs, err)
			continue
		}
		if len(js) == 0 {
			e.log.Warn("rule matched no tag", "file", r.File, "key", r.Key)
		}
		jobs = append(jobs, js...)
	}
	jobs, err := rules.CheckJobs(jobs)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return jobs, failed, nil
}
