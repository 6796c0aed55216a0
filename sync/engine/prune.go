package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// Prune's actions.
const (
	Deleted     Action = "deleted" // --prune: the mirror's tag is gone from the source
	WouldDelete Action = "delete"  // plan --prune
)

// maxPruneShare is the share of the tags imagesync wrote in one
// destination repository that one run deletes without --prune-force.
const maxPruneShare = 0.5

// maxPruneTagChecks bounds the destination tags asked, when a registry
// deletes only by digest, whether they share the digest.
const maxPruneTagChecks = 1000

// pruneState is what Expand learns for --prune: the rules whose source
// listing succeeded with at least one tag (only they may delete), and every
// destination reference some rule selects (never deleted).
type pruneState struct {
	rules   []*rules.Rule
	keep    map[string]bool // "registry/repository:tag"
	blocked map[string]bool // "registry/repository" a rule writes whose listing or expansion failed
}

// blockPrune keeps --prune out of the destination repositories of a rule
// whose listing or expansion failed: what it would select is unknown.
func (e *Engine) blockPrune(r *rules.Rule) {
	if e.prune.blocked == nil {
		e.prune.blocked = map[string]bool{}
	}
	for _, d := range r.Destinations {
		e.prune.blocked[d.Registry+"/"+d.Repository] = true
	}
}

// notePrune records, during Expand, a rule's listing and jobs for --prune.
func (e *Engine) notePrune(r *rules.Rule, listed int, js []rules.Job) {
	if e.prune.keep == nil {
		e.prune.keep = map[string]bool{}
	}
	for _, j := range js {
		if j.Destination.Tag != "" {
			e.prune.keep[j.Destination.String()] = true
		}
	}
	switch {
	case !r.NeedsTagList() || ownTruthAt(r.Source.Registry):
	case listed == 0:
		e.blockPrune(r) // an empty listing says nothing about what left the source
	case r.Prune:
		e.prune.rules = append(e.prune.rules, r)
	}
}

// pruneAll deletes, in the destination repositories of the rules with
// --prune, the tags imagesync wrote there from the rule's source (the
// ledger says which) that no rule selects any more. Dry (plan) it reports
// them as WouldDelete. Nothing is deleted for a rule whose listing failed
// or came back empty, nor a tag whose digest changed since imagesync wrote
// it (someone else pushed it), nor more than maxPruneShare of a
// repository's tags without --prune-force.
func (e *Engine) pruneAll(ctx context.Context) []JobResult {
	if len(e.prune.rules) == 0 || e.opt.Ledger == nil || ctx.Err() != nil || closed(e.opt.Stop) {
		return nil
	}
	var out []JobResult
	done := map[string]bool{}
	for _, r := range e.prune.rules {
		for _, d := range r.Destinations {
			if len(d.Tags) > 0 || d.Digest != "" || ownTruthAt(d.Registry) {
				continue // a rename or a pin owns no repository's tags
			}
			dst := rules.Ref{Registry: d.Registry, Repository: d.Repository}
			k := dst.Repo() + "\x00" + r.Source.Registry + "/" + r.Source.Repository
			if done[k] || e.prune.blocked[dst.Repo()] {
				continue
			}
			done[k] = true
			out = append(out, e.pruneRepo(ctx, r, dst)...)
		}
	}
	return out
}

type pruneCand struct {
	tag, srcTag string
	ent         ledger.Entry
}

func (e *Engine) pruneRepo(ctx context.Context, r *rules.Rule, dst rules.Ref) []JobResult {
	known := e.opt.Ledger.TagsIn(dst.Repo())
	srcRepo := r.Source.Registry + "/" + r.Source.Repository
	var cands []pruneCand
	for tag, ent := range known {
		if e.prune.keep[dst.Repo()+":"+tag] || rules.IsReferrerTag(tag) {
			continue
		}
		i := strings.LastIndex(ent.Src, ":")
		if i < 0 || ent.Src[:i] != srcRepo || strings.Contains(ent.Src, "@") {
			continue // written from another source: not this rule's to delete
		}
		cands = append(cands, pruneCand{tag: tag, srcTag: ent.Src[i+1:], ent: ent})
	}
	if len(cands) == 0 {
		return nil
	}
	sort.Slice(cands, func(a, b int) bool { return cands[a].tag < cands[b].tag })
	result := func(c pruneCand) JobResult {
		return JobResult{
			Job:    rules.Job{Source: rules.Ref{Registry: r.Source.Registry, Repository: r.Source.Repository, Tag: c.srcTag}, Destination: rules.Ref{Registry: dst.Registry, Repository: dst.Repository, Tag: c.tag}, Rule: r},
			Digest: c.ent.Digest, SourceDigest: c.ent.SrcDigest, Attempts: 1,
		}
	}
	var out []JobResult
	if !r.PruneForce && float64(len(cands)) > maxPruneShare*float64(len(known)) {
		err := client.Permanent(fmt.Errorf("prune would delete %d of the %d tags imagesync wrote in %s (more than %.0f%%): nothing deleted there; --prune-force deletes them", len(cands), len(known), dst.Repo(), maxPruneShare*100))
		for _, c := range cands {
			res := result(c)
			res.Action, res.Err = Failed, err
			out = append(out, res)
		}
		return out
	}
	repo, err := e.c.Repo(ctx, dst.Registry, dst.Repository, !e.opt.DryRun)
	if err != nil {
		for _, c := range cands {
			res := result(c)
			res.Action, res.Err = Failed, err
			out = append(out, res)
		}
		return out
	}
	p := &repoPrune{e: e, repo: repo, known: known, deleting: map[string]bool{}, gone: map[string]bool{}}
	for _, c := range cands {
		p.deleting[c.tag] = true
	}
	for _, c := range cands {
		if ctx.Err() != nil || closed(e.opt.Stop) {
			break
		}
		res := result(c)
		act, err := p.one(ctx, c)
		if act == "" && err == nil {
			continue // nothing to report: gone already, or not ours any more
		}
		res.Action, res.Err = act, err
		if err != nil {
			res.Action, res.Err = Failed, e.explain(repo, err)
		}
		out = append(out, res)
	}
	return out
}

// repoPrune deletes in one destination repository.
type repoPrune struct {
	e        *Engine
	repo     *client.Repo
	known    map[string]ledger.Entry // the ledger's tags of the repository
	deleting map[string]bool         // the tags this run deletes there
	gone     map[string]bool         // digests deleted by digest this run
	tags     []string                // the repository's tag list, read once when needed
}

// one deletes one tag: by tag where the registry supports it, otherwise by
// digest when no other tag shares it.
func (p *repoPrune) one(ctx context.Context, c pruneCand) (Action, error) {
	ref := p.repo.String() + ":" + c.tag
	h, err := p.repo.HeadManifest(ctx, c.tag)
	switch {
	case client.IsNotFound(err):
		_ = p.e.opt.Ledger.ForgetManifest(ref)
		if p.gone[c.ent.Digest] { // went with its digest a moment ago
			return Deleted, nil
		}
		return "", nil
	case err != nil:
		return Failed, err
	case h.Digest != c.ent.Digest:
		p.e.log.Warn("prune: the tag changed since imagesync wrote it: kept", "tag", ref, "digest", h.Digest, "written", c.ent.Digest)
		return "", nil
	}
	if p.e.opt.DryRun {
		return WouldDelete, nil
	}
	err = p.repo.DeleteManifest(ctx, c.tag)
	if client.IsTagDeleteUnsupported(err) {
		err = p.byDigest(ctx, c)
	}
	if err != nil {
		return Failed, err
	}
	_ = p.e.opt.Ledger.ForgetManifest(ref)
	return Deleted, nil
}

// byDigest deletes c's manifest by digest, for a registry that deletes
// nothing else (distribution 2.8), unless a tag this run does not delete
// points to the same digest: that tag would go too.
func (p *repoPrune) byDigest(ctx context.Context, c pruneCand) error {
	if p.tags == nil {
		tags, _, err := p.repo.Tags(ctx)
		if err != nil {
			return fmt.Errorf("listing tags to see who shares %s: %w", c.ent.Digest, err)
		}
		p.tags = tags
	}
	checks := 0
	for _, t := range p.tags {
		if p.deleting[t] {
			continue
		}
		if ent, ok := p.known[t]; ok && ent.Digest != c.ent.Digest {
			continue // the ledger knows it holds another digest; a HEAD confirms below only when it claims the same
		}
		if checks++; checks > maxPruneTagChecks {
			return client.Permanent(fmt.Errorf("not deleted: this registry deletes only by digest and the repository has more than %d other tags to check for %s", maxPruneTagChecks, c.ent.Digest))
		}
		h, err := p.repo.HeadManifest(ctx, t)
		if client.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if h.Digest == c.ent.Digest {
			return client.Permanent(fmt.Errorf("not deleted: this registry deletes only by digest, and the tag %s shares %s", t, c.ent.Digest))
		}
	}
	if err := p.repo.DeleteManifest(ctx, c.ent.Digest); err != nil {
		return err
	}
	p.gone[c.ent.Digest] = true
	return nil
}
