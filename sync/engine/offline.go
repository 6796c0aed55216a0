package engine

import (
	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

// ExpandOffline expands rules into jobs without asking the source (verify
// --offline): a rule that needs a tag listing takes the tags the ledger saw
// copied from that source repository. Invalid rules and destination
// conflicts are errors, as in Expand (with Options.SetAside, set aside).
func (e *Engine) ExpandOffline(rs []rules.Rule) ([]rules.Job, error) {
	jobs, errs := e.expandOffline(rs)
	if len(errs) > 0 {
		if e.opt.SetAside == nil {
			return nil, errs
		}
		e.opt.SetAside.Add(errs...)
	}
	return rules.CheckJobs(jobs, e.opt.SetAside)
}

func (e *Engine) expandOffline(rs []rules.Rule) ([]rules.Job, rules.ErrorList) {
	var jobs []rules.Job
	// An image layout source is on disk, not behind the network: its names
	// are read from it.
	names, bad, errs := e.openLayouts(rs)
	for i := range rs {
		r := &rs[i]
		if bad[i] {
			continue
		}
		if r.IsDiscovery() {
			errs = append(errs, &cfgfile.Error{File: r.File, Line: r.Line, Key: r.Key, Msg: "a repository wildcard needs the registry's catalog: verify it without --offline"})
			continue
		}
		tags := names[i]
		if r.NeedsTagList() && !ownTruthAt(r.Source.Registry) {
			tags = e.opt.Ledger.SourceTags(r.Source.Registry + "/" + r.Source.Repository)
		}
		js, err := r.Expand(tags)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		jobs = append(jobs, js...)
	}
	return jobs, errs
}
