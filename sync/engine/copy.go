package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/imagesync/imagesync/sync/engine/registry"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// target is one destination a manifest is being copied to.
type target struct {
	repo   *registry.Repo
	ref    string // tag or digest the manifest is PUT under
	force  bool   // re-push even if present (--force, or verify found it broken)
	exists bool   // the destination tag holds another digest (plan: update)
	mu     sync.Mutex
	err    error
	bytes  int64
}

func (t *target) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

func (t *target) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err != nil
}

func (t *target) addBytes(n int64) {
	t.mu.Lock()
	t.bytes += n
	t.mu.Unlock()
}

func alive(ts []*target) []*target {
	var out []*target
	for _, t := range ts {
		if !t.failed() {
			out = append(out, t)
		}
	}
	return out
}

// source is a unit's source manifest, read at most once.
type source struct {
	repo *registry.Repo
	ref  string
	desc registry.Descriptor
	raw  []byte
	made map[string]manifestBytes // indexes written by the platform filter
	mu   sync.Mutex
	read map[string]manifestBytes // child manifests read ahead (Engine.resolve)
	skip map[string]bool          // children not copied (platform-mode keep-index)
}

func (s *source) load(ctx context.Context) error {
	if s.raw != nil {
		return nil
	}
	raw, d, err := s.repo.GetManifest(ctx, s.ref)
	if err != nil {
		return err
	}
	s.raw, s.desc = raw, d
	return nil
}

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
	desc registry.Descriptor
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
}

// decide reads the source (HEAD, and the manifest when a destination needs
// it) and decides per destination: skipped from the ledger or a HEAD,
// failed, or a target to copy to.
func (e *Engine) decide(ctx context.Context, u *unit) *decision {
	results := make([]JobResult, len(u.jobs))
	for i, j := range u.jobs {
		results[i] = JobResult{Job: j}
	}
	failAll := func(err error) *decision {
		for i := range results {
			if results[i].Action == "" {
				results[i].Action, results[i].Err = Failed, err
			}
		}
		return &decision{results: results}
	}
	filterAll := func(err error) *decision {
		for i := range results {
			if results[i].Action == "" {
				results[i].Action, results[i].Err = Filtered, err
			}
		}
		return &decision{results: results}
	}

	repo, err := e.c.Repo(ctx, u.src.Registry, u.src.Repository, false)
	if err != nil {
		return failAll(err)
	}
	src := &source{repo: repo, ref: u.src.Tag, made: map[string]manifestBytes{}, skip: map[string]bool{}}
	if u.src.Digest != "" {
		src.ref = u.src.Digest
		src.desc.Digest = u.src.Digest // no HEAD needed: the digest is the answer
	} else {
		d, err := repo.HeadManifest(ctx, src.ref)
		if err != nil {
			if registry.IsNotFound(err) {
				err = &notFound{what: "tag " + src.ref, where: u.src.Registry + "/" + u.src.Repository, err: err}
			}
			return failAll(e.explain(repo, err))
		}
		src.desc = d
		// Everything after this reads the manifest by the digest decided
		// here, so report, ledger and destination agree even when the tag
		// moves meanwhile.
		src.ref = d.Digest
		if isSchema1(d.MediaType) {
			return failAll(schema1Error())
		}
	}
	srcDigest := src.desc.Digest
	filterKey := u.filterKey()

	// The ledger knows the digest a destination it saw at this source digest
	// (and platform filter) holds. With TrustLedger that is the answer, with
	// no request to the destination; by default one manifest HEAD confirms
	// it (a tag deleted or overwritten behind our back is then copied
	// again), still without reading the source manifest.
	pending := 0
	heads := make([]*destHead, len(u.jobs)) // destination HEADs already made
	for i, j := range u.jobs {
		if e.opt.Ledger == nil || e.opt.Refresh || e.opt.Force {
			pending++
			continue
		}
		key := ledgerKey(j, srcDigest)
		ent, ok := e.opt.Ledger.Manifest(key)
		if !ok || ent.SrcDigest != srcDigest || ent.Filter != filterKey || e.opt.Ledger.NeedsRepair(key) ||
			(j.Destination.Digest != "" && j.Destination.Digest != ent.Digest) {
			pending++
			continue
		}
		if !e.opt.TrustLedger {
			h := e.headDestination(ctx, j, ent.Digest)
			if h == nil || h.err != nil || h.desc.Digest != ent.Digest {
				heads[i] = h
				pending++
				continue
			}
		}
		results[i].Action, results[i].Digest, results[i].SourceDigest = Skipped, ent.Digest, srcDigest
		if j.Destination.Tag == "" {
			results[i].Job.Destination.Digest = ent.Digest
		}
	}
	if pending == 0 {
		return &decision{results: results}
	}

	// The digest the destination must end up with.
	want := srcDigest
	if !u.filter.Empty() {
		if err := src.load(ctx); err != nil {
			return failAll(e.explain(repo, err))
		}
		switch mt := src.desc.MediaType; {
		case isSchema1(mt):
			return failAll(schema1Error())
		case isIndex(mt) && u.keepIndex:
			kept, err := sparseChildren(ctx, repo, src.raw, u.filter, src.skip)
			if err != nil {
				return failAll(e.explain(repo, err))
			}
			if kept == 0 {
				return filterAll(fmt.Errorf("no image matches the platform filter %s", u.filter))
			}
		case isIndex(mt):
			out, kept, err := filterIndex(ctx, repo, src.raw, u.filter, src.made)
			if err != nil {
				return failAll(e.explain(repo, err))
			}
			if kept == 0 {
				return filterAll(fmt.Errorf("no image matches the platform filter %s", u.filter))
			}
			if want = registry.Digest(out); want != srcDigest {
				src.raw = out
				e.log.Debug("platform filter rewrote index", "source", u.src.String(), "digest", want)
			}
		default:
			p, err := imagePlatform(ctx, repo, src.raw)
			if err != nil {
				return failAll(e.explain(repo, err))
			}
			if !u.filter.Match(p) {
				desc := "no platform"
				if p != nil {
					desc = p.OS + "/" + p.Arch
				}
				return filterAll(fmt.Errorf("image platform %s does not match the filter %s", desc, u.filter))
			}
		}
	}
	entry := ledger.Entry{Digest: want, Src: u.src.String(), SrcDigest: srcDigest, Filter: filterKey}

	// Decide per destination with one HEAD each.
	var targets []*target
	owners := map[*target]int{}
	for i, j := range u.jobs {
		if results[i].Action != "" {
			continue
		}
		results[i].Digest, results[i].SourceDigest = want, srcDigest
		if j.Destination.Tag == "" {
			results[i].Job.Destination.Digest = want
		}
		if j.Destination.Digest != "" && j.Destination.Digest != want {
			results[i].Action = Failed
			results[i].Err = registry.Permanent(fmt.Errorf("destination pins %s but the source is %s", j.Destination.Digest, want))
			continue
		}
		dst, err := e.c.Repo(ctx, j.Destination.Registry, j.Destination.Repository, !e.opt.DryRun)
		if err != nil {
			results[i].Action, results[i].Err = Failed, err
			continue
		}
		ref := j.Destination.Tag
		if ref == "" {
			ref = want
		}
		key := ledgerKey(j, srcDigest)
		t := &target{repo: dst, ref: ref, force: e.opt.Force || (!e.opt.Refresh && e.opt.Ledger.NeedsRepair(key))}
		if !t.force {
			var d registry.Descriptor
			if h := heads[i]; h != nil && h.ref == ref {
				d, err = h.desc, h.err // asked already, confirming the ledger
			} else {
				d, err = dst.HeadManifest(ctx, ref)
			}
			switch {
			case err == nil && d.Digest == want:
				results[i].Action = Skipped
				if !e.opt.DryRun {
					_ = e.opt.Ledger.RecordManifest(key, entry)
				}
				continue
			case err == nil:
				t.exists = true
			case !registry.IsNotFound(err):
				results[i].Action, results[i].Err = Failed, e.explain(dst, err)
				continue
			}
		}
		targets = append(targets, t)
		owners[t] = i
	}
	if len(targets) == 0 {
		return &decision{results: results}
	}

	if err := src.load(ctx); err != nil {
		return failAll(e.explain(repo, err))
	}
	if isSchema1(src.desc.MediaType) {
		return failAll(schema1Error())
	}
	return &decision{results: results, targets: targets, owners: owners, src: src, entry: entry, srcDigest: srcDigest}
}

// syncUnit decides and copies (or, dry, measures) one source reference to
// its destinations. A unit resolved ahead (see Engine.resolve) is not
// decided again on its first attempt.
func (e *Engine) syncUnit(ctx context.Context, u *unit) []JobResult {
	d := u.decided
	u.decided = nil
	if d == nil {
		d = e.decide(ctx, u)
	}
	if len(d.targets) == 0 {
		return d.results
	}
	results, targets, owners, src, entry, srcDigest := d.results, d.targets, d.owners, d.src, d.entry, d.srcDigest
	e.copyManifest(ctx, src, src.raw, src.desc.MediaType, targets)
	for _, t := range targets {
		i := owners[t]
		results[i].Bytes = t.bytes
		switch {
		case t.err != nil && len(src.skip) > 0:
			results[i].Action, results[i].Err = Failed, sparseRefused(e.explain(t.repo, t.err))
		case t.err != nil:
			results[i].Action, results[i].Err = Failed, e.explain(t.repo, t.err)
		case e.opt.DryRun && t.exists:
			results[i].Action = WouldUpdate
		case e.opt.DryRun:
			results[i].Action = WouldCopy
		default:
			results[i].Action = Copied
			_ = e.opt.Ledger.RecordManifest(ledgerKey(u.jobs[i], srcDigest), entry)
		}
	}
	return results
}

// copyManifest copies one manifest (an index with its children, or an image
// with its blobs) to every live target: children before index, blobs before
// manifest, the manifest bytes untouched. Dry (plan), it walks the same tree
// and counts the bytes that would move instead.
func (e *Engine) copyManifest(ctx context.Context, src *source, raw []byte, mediaType string, targets []*target) {
	switch {
	case isSchema1(mediaType):
		for _, t := range targets {
			t.fail(schema1Error())
		}
		return
	case isIndex(mediaType):
		children, err := parseIndex(raw)
		if err != nil {
			for _, t := range targets {
				t.fail(err)
			}
			return
		}
		for _, c := range children {
			if src.skip[c.Digest] {
				continue // platform-mode keep-index: a child the filter drops
			}
			live := alive(targets)
			if len(live) == 0 {
				return
			}
			e.copyChild(ctx, src, c, live)
		}
	default:
		m, err := parseImage(raw)
		if err != nil {
			for _, t := range targets {
				t.fail(err)
			}
			return
		}
		blobs := []blobDesc{m.Config}
		for _, l := range m.Layers {
			if len(l.URLs) > 0 { // foreign layer: stays where its URLs point
				continue
			}
			blobs = append(blobs, l)
		}
		if e.opt.DryRun {
			e.planBlobs(ctx, src.repo, blobs, targets)
			return
		}
		e.copyBlobs(ctx, src.repo, blobs, targets)
	}
	if e.opt.DryRun {
		return
	}
	var wg sync.WaitGroup
	for _, t := range alive(targets) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.repo.PutManifest(ctx, t.ref, mediaType, raw); err != nil {
				t.fail(err)
				return
			}
			e.blobs.manifestPresent(t.repo, registry.Digest(raw))
		}()
	}
	wg.Wait()
}

// copyChild copies one child of an index to the targets that lack it.
func (e *Engine) copyChild(ctx context.Context, src *source, c childDesc, parents []*target) {
	ctx, err := deeper(ctx, c.Digest)
	if err != nil {
		for _, p := range parents {
			p.fail(err)
		}
		return
	}
	var need []*target
	var links = map[*target]*target{}
	for _, p := range parents {
		if !p.force && e.blobs.hasManifest(p.repo, c.Digest) {
			continue
		}
		if !p.force {
			d, err := p.repo.HeadManifest(ctx, c.Digest)
			if err == nil && d.Digest == c.Digest {
				e.blobs.manifestPresent(p.repo, c.Digest)
				continue
			}
			if err != nil && !registry.IsNotFound(err) {
				p.fail(fmt.Errorf("child %s: %w", c.Digest, err))
				continue
			}
		}
		t := &target{repo: p.repo, ref: c.Digest, force: p.force}
		need = append(need, t)
		links[t] = p
	}
	if len(need) == 0 {
		return
	}
	var raw []byte
	mt := c.MediaType
	src.mu.Lock()
	ahead, readAhead := src.read[c.Digest]
	src.mu.Unlock()
	if m, ok := src.made[c.Digest]; ok {
		raw = m.raw
	} else if readAhead {
		raw, mt = ahead.raw, ahead.mediaType
	} else {
		b, d, err := src.repo.GetManifest(ctx, c.Digest)
		if err != nil {
			for _, p := range parents {
				p.fail(fmt.Errorf("child %s: %w", c.Digest, err))
			}
			return
		}
		raw = b
		if mt == "" {
			mt = d.MediaType
		}
	}
	e.copyManifest(ctx, src, raw, mt, need)
	for _, t := range need {
		p := links[t]
		p.addBytes(t.bytes)
		if t.err != nil {
			p.fail(fmt.Errorf("child %s: %w", c.Digest, t.err))
		}
	}
}

func schema1Error() error {
	return registry.Permanent(errors.New("schema 1 manifests (Docker before 1.10) are not supported: rebuild or re-push the image with a current Docker (schema 2)"))
}

// notFound says in words what a 404 meant ("tag 1.0 not found in
// registry/repo") instead of the raw request; it still unwraps to the
// registry's error.
type notFound struct {
	what, where string
	err         error
}

func (n *notFound) Error() string { return n.what + " not found in " + n.where }
func (n *notFound) Unwrap() error { return n.err }

// explain adds what to check to authentication failures.
func (e *Engine) explain(r *registry.Repo, err error) error {
	if registry.IsUnauthorized(err) {
		return fmt.Errorf("%w (access to %s denied using %s: check the auth file entry or docker login)", err, r, r.Access.Source)
	}
	return err
}
