package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// ledgerKey is the reference a job's destination is recorded under: the
// destination tag, or (pushed by digest) the source digest it came from.
func ledgerKey(j rules.Job, srcDigest string) string {
	if j.Destination.Tag != "" {
		return j.Destination.Repo() + ":" + j.Destination.Tag
	}
	return j.Destination.Repo() + "@" + srcDigest
}

// destHead is the answer to one destination manifest HEAD.
type destHead struct {
	ref  string
	desc oci.Descriptor
	err  error
}

// headDestination asks the destination of j which digest ref holds (the
// tag, or for an untagged destination the expected digest). nil when the
// repository cannot be reached at all (the caller decides again and reports).
func (e *Engine) headDestination(ctx context.Context, j rules.Job, digest string) *destHead {
	dst, err := e.c.Repo(ctx, j.Destination.Registry, j.Destination.Repository, !e.opt.DryRun)
	if err != nil {
		return nil
	}
	ref := j.Destination.Tag
	if ref == "" {
		ref = digest
	}
	d, err := dst.HeadManifest(ctx, ref)
	return &destHead{ref: ref, desc: d, err: err}
}

// decision is a unit after its decisions: the results known so far, and the
// destinations that need a copy of the source manifest (already read).
type decision struct {
	results   []JobResult
	targets   []*target
	owners    map[*target]int
	src       *source
	entry     ledger.Entry
	srcDigest string
	heads     []*destHead // destination HEADs made while confirming the ledger
}

// decide reads the source (HEAD, and the manifest when a destination needs
// it) and decides per destination: skipped from the ledger or a HEAD,
// failed, filtered, or a target to copy to.
func (e *Engine) decide(ctx context.Context, u *unit) *decision {
	d := &decision{results: make([]JobResult, len(u.jobs)), heads: make([]*destHead, len(u.jobs))}
	for i, j := range u.jobs {
		d.results[i] = JobResult{Job: j}
	}
	if e.skipImmutable(u, d) == 0 {
		return d // every tag immutable and copied: no request at all
	}
	// The destination tags' HEADs go out with the source's: the decision
	// needs both, and neither waits for the other.
	var prefetch sync.WaitGroup
	for i, j := range u.jobs {
		if d.results[i].Action == "" && e.belief.asksDestination(j) {
			prefetch.Go(func() { d.heads[i] = e.headDestination(ctx, j, "") })
		}
	}
	src, err := e.resolveSource(ctx, u.src)
	prefetch.Wait()
	if err != nil {
		return d.settle(Failed, err)
	}
	d.src, d.srcDigest = src, src.desc.Digest
	if e.skipKnown(ctx, u, d) == 0 || e.holdBack(u, d) == 0 {
		return d
	}
	want, filtered, err := e.wantDigest(ctx, u, src)
	switch {
	case err != nil:
		return d.settle(Failed, err)
	case filtered != nil:
		return d.settle(Filtered, filtered)
	}
	d.entry = ledger.Entry{Digest: want, Src: u.src.String(), SrcDigest: d.srcDigest, Filter: u.filterKey()}
	e.decideDestinations(ctx, u, d, want)
	if len(d.targets) == 0 {
		return d
	}
	if err := src.load(ctx); err != nil {
		return d.settle(Failed, e.explain(src.repo, err))
	}
	if src.desc.MediaType.IsSchema1() {
		return d.settle(Failed, schema1Error())
	}
	return d
}

// settle gives every job not decided yet the action and error.
func (d *decision) settle(a Action, err error) *decision {
	for i := range d.results {
		if d.results[i].Action == "" {
			d.results[i].Action, d.results[i].Err = a, err
		}
	}
	d.targets, d.owners = nil, nil
	return d
}

// resolveSource decides which manifest a source reference stands for: a
// digest is its own answer; a tag is asked with one HEAD, and everything
// after reads the manifest by the digest answered here, so report, ledger
// and destination agree even when the tag moves meanwhile.
func (e *Engine) resolveSource(ctx context.Context, ref rules.Ref) (*source, error) {
	repo, err := e.store(ctx, ref.Registry, ref.Repository, false)
	if err != nil {
		return nil, err
	}
	src := &source{repo: repo, ref: ref.Digest, made: map[string]manifestBytes{}, skip: map[string]bool{}}
	if ref.Digest != "" {
		src.desc.Digest = ref.Digest // no HEAD needed: the digest is the answer
		return src, nil
	}
	d, err := repo.HeadManifest(ctx, ref.Tag)
	if err != nil {
		if oci.IsNotFound(err) {
			err = &notFound{what: "tag " + ref.Tag, where: ref.Registry + "/" + ref.Repository, err: err}
		}
		return nil, e.explain(repo, err)
	}
	if d.MediaType.IsSchema1() {
		return nil, schema1Error()
	}
	src.desc, src.ref = d, d.Digest
	return src, nil
}

// skipKnown settles the jobs whose destination the ledger saw at this
// source digest (and platform filter): with TrustLedger that is the
// answer, with no request to the destination; by default one manifest HEAD
// confirms it (a tag deleted or overwritten behind our back is then copied
// again), still without reading the source manifest. A HEAD that did not
// confirm is kept for decideDestinations. It returns the jobs left.
func (e *Engine) skipKnown(ctx context.Context, u *unit, d *decision) (pending int) {
	for i, j := range u.jobs {
		if d.results[i].Action != "" { // immutable
			continue
		}
		ent, ok := e.belief.manifest(j, d.srcDigest, u.filterKey())
		if !ok || ownTruthAt(j.Destination.Registry) { // a layout is its own truth
			pending++
			continue
		}
		if e.belief.confirm {
			h := d.heads[i]                             // made with the source's HEAD
			if h == nil || h.ref != j.Destination.Tag { // prefetched only for tags
				h = e.headDestination(ctx, j, ent.Digest)
			}
			if h == nil || h.err != nil || h.desc.Digest != ent.Digest {
				d.heads[i] = h
				pending++
				continue
			}
		}
		d.results[i].Action, d.results[i].Digest, d.results[i].SourceDigest = Skipped, ent.Digest, d.srcDigest
		if j.Destination.Tag == "" {
			d.results[i].Job.Destination.Digest = ent.Digest
		}
	}
	return pending
}

// wantDigest is the digest the destinations must end up with: the
// source's, or with a platform filter that of the filtered index (the
// source's own with keep-index, the children it drops recorded in
// src.skip). filtered says why nothing is left to copy when the filter
// keeps no image.
func (e *Engine) wantDigest(ctx context.Context, u *unit, src *source) (want string, filtered, err error) {
	want = src.desc.Digest
	if u.filter.Empty() {
		return want, nil, nil
	}
	if err := src.load(ctx); err != nil {
		return "", nil, e.explain(src.repo, err)
	}
	switch mt := src.desc.MediaType; {
	case mt.IsSchema1():
		return "", nil, schema1Error()
	case mt.IsIndex() && u.keepIndex:
		kept, err := sparseChildren(ctx, src.repo, src.raw, u.filter, src.skip)
		if err != nil {
			return "", nil, e.explain(src.repo, err)
		}
		if kept == 0 {
			return "", fmt.Errorf("no image matches the platform filter %s", u.filter), nil
		}
	case mt.IsIndex():
		out, kept, err := filterIndex(ctx, src.repo, src.raw, u.filter, src.made)
		if err != nil {
			return "", nil, e.explain(src.repo, err)
		}
		if kept == 0 {
			return "", fmt.Errorf("no image matches the platform filter %s", u.filter), nil
		}
		if want = oci.Digest(out); want != src.desc.Digest {
			src.raw = out
			e.log.Debug("platform filter rewrote index", "source", u.src.String(), "digest", want)
		}
	default:
		p, err := imagePlatform(ctx, src.repo, src.raw)
		if err != nil {
			return "", nil, e.explain(src.repo, err)
		}
		if !u.filter.Match(p) {
			if p == nil {
				return "", fmt.Errorf("the image names no platform, so the filter %s does not keep it", u.filter), nil
			}
			return "", fmt.Errorf("image platform %s does not match the filter %s", p.OS+"/"+p.Arch, u.filter), nil
		}
	}
	return want, nil, nil
}

// decideDestinations asks each destination still undecided, with one HEAD
// (or the one skipKnown made): holding want, it is skipped (and recorded);
// lacking it or holding another digest, it becomes a target.
func (e *Engine) decideDestinations(ctx context.Context, u *unit, d *decision, want string) {
	d.owners = map[*target]int{}
	for i, j := range u.jobs {
		r := &d.results[i]
		if r.Action != "" {
			continue
		}
		r.Digest, r.SourceDigest = want, d.srcDigest
		if j.Destination.Tag == "" {
			r.Job.Destination.Digest = want
		}
		if j.Destination.Digest != "" && j.Destination.Digest != want {
			r.Action, r.Err = Failed, oci.Permanent(fmt.Errorf("destination pins %s but the source is %s", j.Destination.Digest, want))
			continue
		}
		dst, err := e.store(ctx, j.Destination.Registry, j.Destination.Repository, !e.opt.DryRun)
		if err != nil {
			r.Action, r.Err = Failed, err
			continue
		}
		ref := manifestRef(dst, j.Destination.Tag, want)
		key := ledgerKey(j, d.srcDigest)
		t := &target{repo: dst, ref: ref, force: e.opt.Force || (!isOwnTruth(dst) && e.belief.repair(key))}
		if !t.force {
			var got oci.Descriptor
			if h := d.heads[i]; h != nil && h.ref == ref {
				got, err = h.desc, h.err // asked already, confirming the ledger
			} else {
				got, err = dst.HeadManifest(ctx, ref)
			}
			switch {
			case err == nil && got.Digest == want:
				r.Action = Skipped
				if !e.opt.DryRun {
					e.reuse(j.Destination).recordImage(key, d.entry)
				}
				continue
			case err == nil:
				t.exists = true
			case !oci.IsNotFound(err):
				r.Action, r.Err = Failed, e.explain(dst, err)
				continue
			}
		}
		if !t.exists && !t.force && !e.opt.DryRun {
			e.askRepo(ctx, dst) // its blobs may need no HEAD: know before they start
		}
		d.targets = append(d.targets, t)
		d.owners[t] = i
	}
}
