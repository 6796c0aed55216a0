package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecordManifest remembers that dst holds e.Digest.
func (l *Ledger) RecordManifest(dst string, e Entry) error {
	if l == nil {
		return nil
	}
	return l.record(record{T: "m", Dst: dst, Digest: e.Digest, Src: e.Src, SrcDigest: e.SrcDigest, Filter: e.Filter, Time: now()})
}

// RecordBlobs remembers that repo holds the blobs.
func (l *Ledger) RecordBlobs(repo string, digests []string) error {
	if l == nil || len(digests) == 0 {
		return nil
	}
	l.mu.Lock()
	var fresh []string
	for _, d := range digests {
		// What this run already holds in memory is not written again. The
		// file is not read for it: a blob lands once per repository and
		// run, almost always one the ledger did not know (it would have
		// been skipped), and writing a known one again changes nothing (a
		// W1 sync saved a read transaction per uploaded blob).
		if known, _ := l.blobInMemory(repo, d); !known {
			fresh = append(fresh, d)
		}
	}
	l.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	return l.record(record{T: "b", Repo: repo, Digests: fresh})
}

// Invalidate forgets everything about repo; with ref set, ref is also marked
// for repair (the next sync re-pushes it even if the manifest is there).
func (l *Ledger) Invalidate(repo, ref string) error {
	if l == nil {
		return nil
	}
	return l.record(record{T: "x", Repo: repo, Ref: ref})
}

// record applies r at once (in memory) and schedules it for the file.
func (l *Ledger) record(r record) error {
	if l.readOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, l.path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("ledger %s: closed", l.path)
	}
	if l.flushErr != nil {
		return l.flushErr
	}
	if l.guard != nil {
		if b, err := json.Marshal(r); err == nil && l.guard(string(b)) != string(b) {
			l.withheld++
			return nil
		}
	}
	l.pending.apply(r)
	l.pending.recs = append(l.pending.recs, r)
	switch {
	case len(l.pending.recs) >= flushRecords:
		if l.timer != nil {
			l.timer.Stop()
		}
		l.timer = time.AfterFunc(0, l.flushAsync)
	case l.timer == nil:
		l.timer = time.AfterFunc(flushDelay, l.flushAsync)
	}
	return nil
}

func (l *Ledger) flushAsync() { _ = l.flush(false) }

// flush commits the pending facts in one transaction, holding the database
// for that transaction only. During a run (final false) a batch that cannot
// get the lock soon is put back to go with the next one; the last one
// (final, at Close) waits as WaitForReaders says.
func (l *Ledger) flush(final bool) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	l.timer = nil
	if len(l.pending.recs) == 0 || !l.store {
		err := l.flushErr
		l.mu.Unlock()
		return err
	}
	l.flushing, l.pending = l.pending, newLayer()
	recs := l.flushing.recs
	l.mu.Unlock()

	l.writing.Store(true) // this process's reads must not hold the file now
	l.dropView()
	db, err := l.openDB(batchWait, final)
	l.writing.Store(false)
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, r := range recs {
				if err := applyTx(tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		err = errors.Join(err, db.Close())
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(err, ErrLocked) && !final {
		// Other runs hold the ledger: keep the facts (in order) for the
		// next batch, which is tried again later.
		merged := newLayer()
		for _, ly := range []*layer{l.flushing, l.pending} {
			for _, r := range ly.recs {
				merged.apply(r)
				merged.recs = append(merged.recs, r)
			}
		}
		l.flushing, l.pending = nil, merged
		if l.timer == nil && !l.closed {
			l.timer = time.AfterFunc(flushDelay, l.flushAsync)
		}
		return nil
	}
	l.flushing = nil
	if err != nil && l.flushErr == nil {
		// The facts are lost (the ledger is a hint); later writes are refused.
		l.flushErr = fmt.Errorf("ledger %s: writing: %w", l.path, err)
	}
	return l.flushErr
}

// view runs f in a read transaction of the database, if there is one,
// opened read-only and kept for the lookups of the next viewLease only (a
// lookup burst does not reopen the file each time; other runs' batches get
// the file between bursts). While this run writes a batch, each read opens
// the file for itself. Errors of the store read as "not known".
func (l *Ledger) view(f func(tx *bolt.Tx)) {
	if !l.store {
		return
	}
	if l.writing.Load() {
		if db, err := openView(l.path); err == nil {
			_ = db.View(func(tx *bolt.Tx) error {
				f(tx)
				return nil
			})
			db.Close()
		}
		return
	}
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	if l.viewDB == nil {
		db, err := openView(l.path)
		if err != nil {
			return
		}
		// One read transaction for the lease, not one per lookup (each
		// allocated a transaction, its root and a copy of the meta page: a
		// W1 sync's ~2,200 lookups made ~20,000 objects). It is as current:
		// while the file is open here, other runs' batches wait for it, and
		// this run's own drop it first.
		tx, err := db.Begin(false)
		if err != nil {
			_ = db.Close()
			return
		}
		l.viewDB, l.viewTx = db, tx
		l.viewTimer = time.AfterFunc(viewLease, l.dropView)
	}
	f(l.viewTx) // viewMu held: one lookup at a time uses the transaction
}

// dropView closes the read-only handle view keeps.
func (l *Ledger) dropView() {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	if l.viewTimer != nil {
		l.viewTimer.Stop()
		l.viewTimer = nil
	}
	if l.viewTx != nil {
		_ = l.viewTx.Rollback()
		l.viewTx = nil
	}
	if l.viewDB != nil {
		_ = l.viewDB.Close()
		l.viewDB = nil
	}
}

// Close writes what is pending and closes the ledger.
func (l *Ledger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.mu.Unlock()
	defer l.dropView()
	if l.readOnly {
		return nil
	}
	return l.flush(true)
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
