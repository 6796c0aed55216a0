package engine

import (
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// immutable returns what the ledger knows of j's destination when the
// rule declares j's source tag immutable (it never moves once pushed) and
// the ledger saw this very source reference copied there under the same
// platform filter: then the job is decided with no request to either side.
// --refresh, --force, a repair mark or a pinned digest that disagrees
// make it an ordinary job.
func (b belief) immutable(j rules.Job, filter string) (ledger.Entry, bool) {
	if b.l == nil || b.refresh || b.force || j.Rule == nil || len(j.Rule.Immutable) == 0 ||
		j.Source.Tag == "" || j.Destination.Tag == "" || ownTruthAt(j.Destination.Registry) || !j.Rule.IsImmutable(j.Source.Tag) {
		return ledger.Entry{}, false
	}
	key := ledgerKey(j, "")
	ent, ok := b.l.Manifest(key)
	if !ok || ent.Src != j.Source.String() || ent.Filter != filter || b.l.NeedsRepair(key) ||
		(j.Destination.Digest != "" && j.Destination.Digest != ent.Digest) {
		return ledger.Entry{}, false
	}
	return ent, true
}

// skipImmutable settles, before any request, the jobs of u whose source tag
// is immutable and already copied (belief.immutable). It returns the jobs
// left.
func (e *Engine) skipImmutable(u *unit, d *decision) (pending int) {
	for i, j := range u.jobs {
		ent, ok := e.belief.immutable(j, u.filterKey())
		if !ok {
			pending++
			continue
		}
		r := &d.results[i]
		r.Action, r.Digest, r.SourceDigest, r.Immutable = Skipped, ent.Digest, ent.SrcDigest, true
	}
	return pending
}
