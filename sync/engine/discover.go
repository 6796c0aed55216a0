package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/registry/dockerhub"
	"github.com/imagesync/imagesync/sync/rules"
)

// discover turns every rule whose source is a repository pattern
// (reg/team/*, reg/**, a native repositories: list) into one rule per
// repository it selects, listing each registry's catalog once. Other rules
// pass unchanged, in order. A catalog that cannot be listed fails the
// rule (one failed result per destination); names the catalog lists that
// are not valid repository names are reported (a warning, and a failed
// result when they lie below the rule's prefix) and never sent anywhere.
func (e *Engine) discover(ctx context.Context, rs []rules.Rule) ([]rules.Rule, []JobResult, rules.ErrorList) {
	found := false
	for i := range rs {
		found = found || rs[i].IsDiscovery()
	}
	if !found {
		e.expanded = nil
		return rs, nil, nil
	}
	type catalog struct {
		repos, invalid []string
		err            error
	}
	catalogs := map[string]*catalog{} // registry + "\x00" + prefix credentials
	var out []rules.Rule
	defer func() { e.expanded = out }()
	var failed []JobResult
	var errs rules.ErrorList
	for i := range rs {
		r := &rs[i]
		if !r.IsDiscovery() {
			out = append(out, *r)
			continue
		}
		sel := r.Source.Repos
		names, literal := sel.Literal()
		var invalid []string
		if !literal {
			key := r.Source.Registry + "\x00" + sel.Prefix
			c, ok := catalogs[key]
			if !ok {
				c = &catalog{}
				if dockerhub.Is(r.Source.Registry) {
					c.err = client.Permanent(fmt.Errorf("%s (Docker Hub) does not list its repositories (no /v2/_catalog): name the repositories instead (a repositories: list of names in the config file, or one rule per repository)", r.Source.Registry))
				} else if err := ctx.Err(); err != nil {
					c.err = err
				} else {
					c.repos, c.invalid, c.err = e.c.Catalog(ctx, r.Source.Registry, sel.Prefix)
				}
				catalogs[key] = c
			}
			if c.err != nil {
				failed = append(failed, e.ruleFailed(r, c.err)...)
				continue
			}
			names, invalid = c.repos, c.invalid
		}
		failed = append(failed, e.invalidRepositories(r, invalid)...)
		concrete, err := r.ForRepositories(names)
		if err != nil {
			errs = append(errs, err)
		}
		if len(concrete) == 0 && err == nil {
			e.log.Warn("repository pattern matched no repository", "file", r.File, "key", r.Key, "registry", r.Source.Registry, "pattern", sel.Pattern)
		}
		out = append(out, concrete...)
	}
	return out, failed, errs
}

// Rules returns the rules of the last Expand: those given, a wildcard rule
// replaced by the rules of the repositories it selected (with what their
// tag filters removed, for plan).
func (e *Engine) Rules(given []rules.Rule) []rules.Rule {
	if e.expanded == nil {
		return given
	}
	return e.expanded
}

// ruleFailed is one failed result per destination of a rule that could
// not be expanded.
func (e *Engine) ruleFailed(r *rules.Rule, err error) []JobResult {
	var failed []JobResult
	src := rules.Ref{Registry: r.Source.Registry, Repository: r.Source.Repository}
	if r.Source.Repos != nil {
		src.Repository = r.Source.Repos.Pattern // reads as the rule key: registry/team/*
	}
	for _, d := range r.Destinations {
		failed = append(failed, JobResult{
			Job:    rules.Job{Source: src, Destination: rules.Ref{Registry: d.Registry, Repository: d.Repository}, Rule: r},
			Action: Failed,
			Err:    err,
		})
	}
	return failed
}

// invalidRepositories reports the names a catalog listed that break the
// repository grammar, like invalidTags: a warning each (the first
// maxInvalidTagReports, then one for the rest) and a failed result per
// destination when the name is below the rule's prefix (the rule might
// have selected it). The name is quoted, never used in a request.
func (e *Engine) invalidRepositories(r *rules.Rule, invalid []string) []JobResult {
	var failed []JobResult
	reported, more := 0, 0
	seen := map[string]bool{}
	prefix := r.Source.Repos.Prefix
	for _, n := range invalid {
		if seen[n] || (prefix != "" && !strings.HasPrefix(n, prefix+"/")) {
			continue
		}
		seen[n] = true
		if reported >= maxInvalidTagReports {
			more++
			continue
		}
		reported++
		n = clipName(n)
		e.log.Warn("registry listed an invalid repository name: not copied", "registry", r.Source.Registry, "repository", n)
		failed = append(failed, e.ruleFailed(r, client.Permanent(fmt.Errorf("%s lists the repository %q, which is not a valid repository name: not copied", r.Source.Registry, n)))...)
	}
	if more > 0 {
		e.log.Warn("registry listed more invalid repository names: not copied", "registry", r.Source.Registry, "count", more)
		failed = append(failed, e.ruleFailed(r, client.Permanent(fmt.Errorf("%s lists %d more invalid repository names: not copied", r.Source.Registry, more)))...)
	}
	return failed
}

// clipName shortens a hostile name for a message.
func clipName(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}
