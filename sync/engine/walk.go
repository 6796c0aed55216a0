package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// maxManifests bounds the distinct manifests in one image's tree (the
// index, its children, nested indexes and theirs). Real images hold a few
// dozen; a registry or layout can list any number, each costing a request.
const maxManifests = 1000

// manifest is one manifest of a tree: its digest, media type and bytes.
type manifest struct {
	digest    string
	mediaType types.MediaType
	raw       []byte
}

// walker is what one walk over a manifest tree does (see walkTree).
type walker struct {
	// parallel walks an index's children at once (copy); otherwise one
	// after the other, in the index's order (measure, verify).
	parallel bool
	// enter is called once per distinct child of an index before it is
	// read; false leaves it, and what is under it, out of the walk. nil:
	// every child is walked.
	enter func(ctx context.Context, c oci.Entry) bool
	// visit is called once per manifest walked: an image with its blobs
	// (config and layers, foreign layers left out), an index (blobs nil)
	// after every child under it was walked.
	visit func(ctx context.Context, m manifest, blobs []oci.Blob)
	// fail is called when the manifest digest cannot be walked: not read,
	// not parsed, past a bound, or the walk was cancelled.
	fail func(digest string, err error)
}

// walkTree is the one walk over a manifest tree: copy and plan
// (copyManifest), the progress totals (measure) and verify (verifyTree) all
// go through it. Each distinct digest is walked once: a manifest listed
// again, by the same index or another, is waited for (its parent is visited
// after it) but not read or walked again, so repeated children cost
// nothing. Child manifests are read through src (each read once and kept
// for the unit's next walk; src.skip leaves children out). The walk is
// bounded by maxIndexDepth and maxManifests, and stops when ctx ends.
func walkTree(ctx context.Context, src *source, root manifest, w walker) {
	s := &walkState{w: w, src: src, seen: map[string]chan struct{}{}}
	done, _, _ := s.claim(root.digest)
	s.walk(ctx, root, done)
}

type walkState struct {
	w   walker
	src *source

	mu   sync.Mutex
	seen map[string]chan struct{} // digest → closed once it is walked
}

// claim makes the caller the walker of digest (first) or returns the walk
// of it already under way or done.
func (s *walkState) claim(digest string) (done chan struct{}, first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.seen[digest]; ok {
		return d, false, nil
	}
	if len(s.seen) >= maxManifests {
		return nil, false, errTooManyManifests
	}
	d := make(chan struct{})
	s.seen[digest] = d
	return d, true, nil
}

// fits checks that the children of an index, added to what the walk has
// seen, stay within maxManifests.
func (s *walkState) fits(children []oci.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := map[string]bool{}
	for _, c := range children {
		if _, ok := s.seen[c.Digest]; !ok && !s.src.skip[c.Digest] {
			fresh[c.Digest] = true
		}
	}
	if len(s.seen)+len(fresh) > maxManifests {
		return errTooManyManifests
	}
	return nil
}

var errTooManyManifests = oci.Permanent(fmt.Errorf("the image holds more than %d distinct manifests: not copied", maxManifests))

func (s *walkState) walk(ctx context.Context, m manifest, done chan struct{}) {
	defer close(done)
	if err := ctx.Err(); err != nil {
		s.w.fail(m.digest, context.Cause(ctx))
		return
	}
	switch {
	case m.mediaType.IsSchema1():
		s.w.fail(m.digest, schema1Error())
	case m.mediaType.IsIndex():
		children, err := oci.ParseIndex(m.raw)
		if err != nil {
			s.w.fail(m.digest, err)
			return
		}
		if !s.children(ctx, m.digest, children) {
			return
		}
		if err := ctx.Err(); err != nil { // children cut short: not this index
			s.w.fail(m.digest, context.Cause(ctx))
			return
		}
		s.w.visit(ctx, m, nil)
	default:
		blobs, err := oci.ImageBlobs(m.raw)
		if err != nil {
			s.w.fail(m.digest, err)
			return
		}
		s.w.visit(ctx, m, blobs)
	}
}

// children walks the children of one index and waits until every one of
// them is walked (here or by another branch); false when the walk stopped.
func (s *walkState) children(ctx context.Context, index string, children []oci.Entry) bool {
	if err := s.fits(children); err != nil { // before reading any of them
		s.w.fail(index, err)
		return false
	}
	var wg sync.WaitGroup
	var waits []chan struct{}
	ok := true
	for _, c := range children {
		if err := ctx.Err(); err != nil {
			s.w.fail(c.Digest, context.Cause(ctx))
			ok = false
			break
		}
		if s.src.skip[c.Digest] {
			continue // platform-mode keep-index: a child the filter drops
		}
		cctx, err := deeper(ctx, c.Digest)
		if err != nil {
			s.w.fail(c.Digest, err)
			ok = false
			break
		}
		done, first, err := s.claim(c.Digest)
		if err != nil {
			s.w.fail(c.Digest, err)
			ok = false
			break
		}
		if !first {
			waits = append(waits, done)
			continue
		}
		step := func() {
			if s.w.enter != nil && !s.w.enter(cctx, c) {
				close(done)
				return
			}
			cm, err := s.src.child(cctx, c)
			if err != nil {
				s.w.fail(c.Digest, err)
				close(done)
				return
			}
			s.walk(cctx, cm, done)
		}
		if s.w.parallel {
			wg.Go(step)
		} else {
			step()
		}
	}
	wg.Wait()
	for _, d := range waits {
		select {
		case <-d:
		case <-ctx.Done():
			return false
		}
	}
	return ok
}

// child returns a child manifest of the source: one the platform filter
// wrote, one read before, or one read now (and kept for the next walk). Its
// media type is the one the index lists, else the one the store answers.
func (s *source) child(ctx context.Context, c oci.Entry) (manifest, error) {
	if m, ok := s.made[c.Digest]; ok {
		return manifest{digest: c.Digest, mediaType: m.mediaType, raw: m.raw}, nil
	}
	s.mu.Lock()
	m, ok := s.read[c.Digest]
	s.mu.Unlock()
	if ok {
		return manifest{digest: c.Digest, mediaType: m.mediaType, raw: m.raw}, nil
	}
	raw, d, err := s.repo.GetManifest(ctx, c.Digest)
	if err != nil {
		return manifest{}, err
	}
	if got := oci.DigestWith(c.Digest, raw); got != c.Digest { // stores check it too; so the tree has no cycles
		return manifest{}, oci.Permanent(fmt.Errorf("manifest %s: its bytes hash to %s", c.Digest, got))
	}
	mt := c.MediaType
	if mt == "" {
		mt = d.MediaType
	}
	s.mu.Lock()
	if s.read == nil {
		s.read = map[string]manifestBytes{}
	}
	s.read[c.Digest] = manifestBytes{raw: raw, mediaType: mt}
	s.mu.Unlock()
	return manifest{digest: c.Digest, mediaType: mt, raw: raw}, nil
}
