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

func (l *Ledger) flushAsync() { _ = l.flush() }

// flush commits the pending facts in one transaction.
func (l *Ledger) flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	l.timer = nil
	if len(l.pending.recs) == 0 || l.db == nil {
		err := l.flushErr
		l.mu.Unlock()
		return err
	}
	l.flushing, l.pending = l.pending, newLayer()
	recs := l.flushing.recs
	l.mu.Unlock()

	err := l.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			if err := applyTx(tx, r); err != nil {
				return err
			}
		}
		return nil
	})

	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushing = nil
	if err != nil && l.flushErr == nil {
		// The facts are lost (the ledger is a hint); later writes are refused.
		l.flushErr = fmt.Errorf("ledger %s: writing: %w", l.path, err)
	}
	return l.flushErr
}

// view runs f in a read transaction of the database, if there is one.
// Errors of the store read as "not known".
func (l *Ledger) view(f func(tx *bolt.Tx)) {
	if l.db == nil {
		return
	}
	_ = l.db.View(func(tx *bolt.Tx) error {
		f(tx)
		return nil
	})
}

// Close writes what is pending, closes the file and unlocks the ledger.
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
	var err error
	if !l.readOnly {
		err = l.flush()
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.db != nil {
		err = errors.Join(err, l.db.Close())
	}
	if l.lock != nil {
		err = errors.Join(err, l.lock.Unlock())
	}
	return err
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }
