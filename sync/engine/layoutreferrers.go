package engine

import (
	"context"
	"fmt"

	"github.com/imagesync/imagesync/sync/layout"
)

// indexReferrer makes a referrer now at its destination findable from its
// subject: a store that lists referrers itself (an image layout: an
// index.json entry without a name, as oras-go's OCI store does) lists it;
// any other (a registry) without the referrers API gets it in its
// sha256-<hex> tag index (one with the API indexes it itself).
func (e *Engine) indexReferrer(ctx context.Context, dst Store, subject string, ref referrer) error {
	if ix, ok := dst.(referrerIndexer); ok {
		if err := ix.IndexReferrer(ctx, ref.desc.Digest, ref.mediaType); err != nil {
			return fmt.Errorf("listing it in %s: %w", layout.IndexFile, err) // the one store that lists them
		}
		return nil
	}
	return e.updateFallbackIndex(ctx, dst, subject, ref)
}

// unlisted reports whether dst lists referrers itself and stores the
// manifest digest without listing it (a run stopped between the two):
// other tools would not find it as a referrer.
func unlisted(dst Store, digest string) bool {
	ix, ok := dst.(referrerIndexer)
	return ok && !ix.Lists(digest)
}

// checkUnnamed sorts a layout source's index.json entries without a name:
// referrers are copied with their subject (when the rule copies referrers),
// and those whose subject the layout does not hold are ignored with a
// warning; any other unnamed entry has no name to be pushed under (the
// error, nil when there is none).
func (e *Engine) checkUnnamed(path string, l *layout.Layout, warned map[string]bool) error {
	others, orphans := l.UnnamedEntries()
	if !warned[path] {
		warned[path] = true
		for _, o := range orphans {
			e.log.Warn("ignoring a referrer whose subject is not in the layout", "layout", path, "entry", o.Position, "referrer", o.Digest, "subject", o.Subject)
		}
	}
	if len(others) == 0 {
		return nil
	}
	names, unnamed := l.Names()
	u := others[0]
	return fmt.Errorf("%s: index.json entry %d (%s) has no %s annotation and no subject: there is no name to push it under (%d of %d entries are unnamed; name them registry/repository:tag)", path, u.Position, u.Digest, layout.AnnotationName, len(others), len(unnamed)+len(names))
}
