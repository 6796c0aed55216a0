package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
)

// target is one destination a manifest is being copied to.
type target struct {
	repo   Store
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
	repo Store
	ref  string
	desc oci.Descriptor
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
	ctx, release, err := e.reserveChildren(ctx, src)
	if err != nil {
		for _, t := range targets {
			results[owners[t]].Action, results[owners[t]].Err = Failed, err
		}
		return results
	}
	defer release()
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
			e.reuse(u.jobs[i].Destination).recordImage(ledgerKey(u.jobs[i], srcDigest), entry)
		}
	}
	return results
}

// copyManifest copies one manifest (an index with its children, or an image
// with its blobs) to every live target: children before index, blobs before
// manifest, the manifest bytes untouched, each distinct child once per
// destination (walkTree). Dry (plan), it walks the same tree and counts the
// bytes that would move instead.
func (e *Engine) copyManifest(ctx context.Context, src *source, raw []byte, mediaType types.MediaType, targets []*target) {
	root := manifest{digest: oci.Digest(raw), mediaType: mediaType, raw: raw}
	c := &treeCopy{e: e, src: src, root: root.digest, targets: targets, need: map[string][]*target{root.digest: targets}}
	walkTree(ctx, src, root, walker{
		parallel: true, // children in parallel; the index after all of them
		enter:    c.enter,
		visit:    c.visit,
		fail:     c.fail,
	})
}

// treeCopy is one copyManifest: per manifest of the tree, the targets
// that lack it.
type treeCopy struct {
	e       *Engine
	src     *source
	root    string
	targets []*target

	mu   sync.Mutex
	need map[string][]*target
}

func (c *treeCopy) needOf(digest string) ([]*target, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.need[digest]
	return alive(ts), ok
}

// enter finds the targets that lack a child (false: none does).
func (c *treeCopy) enter(ctx context.Context, child oci.Entry) bool {
	var ts []*target
	for _, t := range alive(c.targets) {
		if !t.force && c.e.blobs.hasManifest(t.repo, child.Digest) {
			continue
		}
		if !t.force && t.exists { // a destination whose tag was missing lacks the children too: PUT them without asking
			d, err := t.repo.HeadManifest(ctx, child.Digest)
			if err == nil && d.Digest == child.Digest {
				c.e.blobs.manifestPresent(t.repo, child.Digest)
				continue
			}
			if err != nil && !oci.IsNotFound(err) {
				t.fail(fmt.Errorf("child %s: %w", child.Digest, err))
				continue
			}
		}
		ts = append(ts, t)
	}
	c.mu.Lock()
	c.need[child.Digest] = ts
	c.mu.Unlock()
	return len(ts) > 0
}

// visit copies an image's blobs (dry: counts them), then PUTs the manifest
// (a child by digest, the root under each target's reference).
func (c *treeCopy) visit(ctx context.Context, m manifest, blobs []oci.Blob) {
	e := c.e
	ts, _ := c.needOf(m.digest)
	if len(ts) == 0 {
		return
	}
	if !m.mediaType.IsIndex() {
		if e.opt.DryRun {
			e.planBlobs(ctx, c.src.repo, blobs, ts)
			return
		}
		e.copyBlobs(ctx, c.src.repo, blobs, ts)
	}
	if e.opt.DryRun {
		return
	}
	var wg sync.WaitGroup
	for _, t := range alive(ts) {
		ref := m.digest // a child is PUT by digest
		if m.digest == c.root {
			ref = t.ref
		}
		wg.Go(func() {
			if err := t.repo.PutManifest(ctx, ref, m.mediaType, m.raw); err != nil {
				t.fail(wrapChild(m.digest, c.root, err))
				return
			}
			e.blobs.manifestPresent(t.repo, m.digest)
		})
	}
	wg.Wait()
}

// fail fails the targets of a manifest that could not be walked.
func (c *treeCopy) fail(digest string, err error) {
	ts, ok := c.needOf(digest)
	if !ok {
		ts = alive(c.targets)
	}
	for _, t := range ts {
		t.fail(wrapChild(digest, c.root, err))
	}
}

// wrapChild says which child an error concerns (not for the root).
func wrapChild(digest, root string, err error) error {
	if digest == root {
		return err
	}
	return fmt.Errorf("child %s: %w", digest, err)
}

func schema1Error() error {
	return oci.Permanent(errors.New("schema 1 manifests (Docker before 1.10) are not supported: rebuild or re-push the image with a current Docker (schema 2)"))
}

// notFound says in words what a 404 meant ("tag 1.0 not found in
// registry/repo") instead of the raw request; it still unwraps to the
// registry's error.
type notFound struct {
	what, where string
	err         error
}

func (n *notFound) Error() string {
	if why := missingDetail(n.err); why != "" { // a layout says what it lacks
		return n.what + " not found in " + n.where + " (" + why + ")"
	}
	return n.what + " not found in " + n.where
}
func (n *notFound) Unwrap() error { return n.err }

// explain adds what to check to authentication failures.
func (e *Engine) explain(s Store, err error) error {
	if r, ok := s.(credentialNamer); ok && client.IsUnauthorized(err) {
		return fmt.Errorf("%w (access to %s denied using %s: check the auth file entry or docker login)", err, s, r.CredentialSource())
	}
	return err
}
