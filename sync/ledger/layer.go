package ledger

import (
	"strings"
	"time"
)

// layer is a set of facts held in memory on top of the database: the facts
// written since the last commit, those of the commit in progress, or a whole
// JSON-lines ledger opened read-only. Lookups go from the newest layer to
// the database; a repository invalidated in a layer hides what older layers
// and the database know of it.
type layer struct {
	recs      []record                              // in order, for the commit
	manifests map[string]Entry                      // dst ref → entry
	blobs     map[string]map[string]bool            // registry/repo → digests
	byReg     map[string]map[string]map[string]bool // registry → digest → repos
	repair    map[string]bool                       // ref → marked (true) or cleared (false)
	dropped   map[string]bool                       // repos invalidated in this layer
	seen      map[string]Seen                       // source ref → first seen at its digest (--min-age)
	gone      map[string]bool                       // dst refs deleted (--prune) in this layer
	uploads   map[string]Upload                     // repo 0 digest → open upload session (no Loc: dropped)
}

func newLayer() *layer {
	return &layer{
		manifests: map[string]Entry{},
		blobs:     map[string]map[string]bool{},
		byReg:     map[string]map[string]map[string]bool{},
		repair:    map[string]bool{},
		dropped:   map[string]bool{},
		seen:      map[string]Seen{},
		gone:      map[string]bool{},
		uploads:   map[string]Upload{},
	}
}

func entryOf(r record) Entry {
	t, _ := time.Parse(time.RFC3339Nano, r.Time)
	return Entry{Digest: r.Digest, Src: r.Src, SrcDigest: r.SrcDigest, Filter: r.Filter, Time: t}
}

// apply adds one record's effect to the layer.
func (ly *layer) apply(r record) {
	switch r.T {
	case "m":
		ly.manifests[r.Dst] = entryOf(r)
		delete(ly.gone, r.Dst)
		ly.repair[r.Dst] = false
	case "b":
		reg, _, _ := strings.Cut(r.Repo, "/")
		if ly.blobs[r.Repo] == nil {
			ly.blobs[r.Repo] = map[string]bool{}
		}
		if ly.byReg[reg] == nil {
			ly.byReg[reg] = map[string]map[string]bool{}
		}
		for _, d := range r.Digests {
			ly.blobs[r.Repo][d] = true
			if ly.byReg[reg][d] == nil {
				ly.byReg[reg][d] = map[string]bool{}
			}
			ly.byReg[reg][d][r.Repo] = true
		}
	case "s":
		ly.seen[r.Src] = seenOf(r)
	case "u":
		ly.uploads[uploadKey(r.Repo, r.Digest)] = Upload{Loc: r.Loc, Off: r.Off, Hash: r.HS}
	case "d":
		delete(ly.manifests, r.Dst)
		ly.gone[r.Dst] = true
	case "x":
		for k := range ly.manifests {
			if repoOf(k) == r.Repo {
				delete(ly.manifests, k)
			}
		}
		reg, _, _ := strings.Cut(r.Repo, "/")
		for d := range ly.blobs[r.Repo] {
			delete(ly.byReg[reg][d], r.Repo)
		}
		delete(ly.blobs, r.Repo)
		ly.dropped[r.Repo] = true
		if r.Ref != "" {
			ly.repair[r.Ref] = true
		}
	}
}
