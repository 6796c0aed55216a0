package engine

import (
	"fmt"
	"time"

	"github.com/imagesync/imagesync/sync/rules"
)

// Waiting is a job held back by --min-age: its source digest was first seen
// too recently (plan and sync alike).
const Waiting Action = "wait"

// holdBack settles as Waiting the undecided jobs whose rule has a min-age
// and whose source tag has been at its current digest for less than that:
// the ledger records when each source reference was first seen at a digest
// (a tag that moves starts again). It runs after the source's HEAD and the
// ledger's skips, before anything is read or written. It returns the jobs
// left.
func (e *Engine) holdBack(u *unit, d *decision) (pending int) {
	var since time.Time
	recorded := false
	for i, j := range u.jobs {
		r := &d.results[i]
		if r.Action != "" {
			continue
		}
		age := minAge(j)
		if age <= 0 || u.src.Tag == "" { // a digest never moves
			pending++
			continue
		}
		if !recorded {
			// plan's read-only ledger records nothing: a digest it has not
			// seen is as new as now.
			since = e.belief.seenSince(u.src.String(), d.srcDigest)
			recorded = true
		}
		left := age - time.Since(since)
		if left <= 0 {
			pending++
			continue
		}
		r.Action, r.Digest, r.SourceDigest = Waiting, d.srcDigest, d.srcDigest
		r.Wait = max(time.Second, left.Round(time.Second))
		r.Err = fmt.Errorf("held back by min-age %s: at this digest for %s, %s left", age, time.Since(since).Round(time.Second), r.Wait)
	}
	return pending
}

// seenSince is since when the ledger has seen the source reference at
// digest, now when it had not (recorded then, except read-only for plan).
// It is a fact about the source, believed even with --refresh or --force:
// forgetting it would hold back everything again.
func (b belief) seenSince(src, digest string) time.Time {
	since, _ := b.l.RecordSeen(src, digest) // a nil ledger answers now
	return since
}

func minAge(j rules.Job) time.Duration {
	if j.Rule == nil {
		return 0
	}
	return j.Rule.MinAge
}
