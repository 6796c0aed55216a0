package engine

import (
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// belief is the one place that decides which facts of the ledger the run
// acts on: whether a destination manifest it knows may stand for a HEAD,
// whether that still needs confirming, whether a repair mark counts, and
// whether its blob and child-manifest facts are believed.
type belief struct {
	l       *ledger.Ledger // nil: no ledger, nothing believed
	refresh bool           // --refresh: the ledger is written, never believed
	force   bool           // --force: every destination is pushed again
	confirm bool           // a known destination manifest is confirmed with one HEAD (not with TrustLedger)
}

func newBelief(opt Options) belief {
	return belief{l: opt.Ledger, refresh: opt.Refresh, force: opt.Force, confirm: !opt.TrustLedger}
}

// manifest returns what the ledger knows of j's destination when it may
// decide the job: recorded from this source digest and platform filter, not
// marked for repair, and not contradicting a digest the destination pins.
func (b belief) manifest(j rules.Job, srcDigest, filter string) (ledger.Entry, bool) {
	if b.l == nil || b.refresh || b.force {
		return ledger.Entry{}, false
	}
	key := ledgerKey(j, srcDigest)
	ent, ok := b.l.Manifest(key)
	if !ok || ent.SrcDigest != srcDigest || ent.Filter != filter || b.l.NeedsRepair(key) ||
		(j.Destination.Digest != "" && j.Destination.Digest != ent.Digest) {
		return ledger.Entry{}, false
	}
	return ent, true
}

// repair reports whether verify marked the destination reference key as
// broken, so that it is pushed again even if its manifest is there.
func (b belief) repair(key string) bool { return !b.refresh && b.l.NeedsRepair(key) }

// content reports whether the ledger's blob and child-manifest facts stand
// for a HEAD (in both modes: a destination that lost them refuses the
// manifest PUT, and the unit is healed).
func (b belief) content() bool { return b.l != nil && !b.refresh }

// asksDestination reports whether deciding j asks its destination tag with
// a HEAD whatever the source digest turns out to be, so the HEAD can go out
// with the source's: a registry tag (a layout answers from its files), not
// pinned, not forced or marked for repair, and — trusting the ledger — not
// known to it (a trusted no-op sends the destination nothing).
func (b belief) asksDestination(j rules.Job) bool {
	if j.Destination.Tag == "" || j.Destination.Digest != "" || b.force || ownTruthAt(j.Destination.Registry) {
		return false
	}
	key := ledgerKey(j, "")
	if b.repair(key) {
		return false
	}
	if !b.confirm && !b.refresh {
		if _, ok := b.l.Manifest(key); ok {
			return false
		}
	}
	return true
}
