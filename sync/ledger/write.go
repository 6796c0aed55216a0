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
		if !l.hasBlob(repo, d) {
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
	read := func(db *bolt.DB) {
		_ = db.View(func(tx *bolt.Tx) error {
			f(tx)
			return nil
		})
	}
	if l.writing.Load() {
		if db, err := openView(l.path); err == nil {
			read(db)
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
		l.viewDB = db
		l.viewTimer = time.AfterFunc(viewLease, l.dropView)
	}
	read(l.viewDB)
}

// dropView closes the read-only handle view keeps.
func (l *Ledger) dropView() {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	if l.viewTimer != nil {
		l.viewTimer.Stop()
		l.viewTimer = nil
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
