package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Runs share a ledger by holding its database only while they use it:
// a lookup (and ledger export or stats, for their whole read) under
// bbolt's shared lock, a batch of new facts under its exclusive lock. So a
// reader waits at most for one batch of a writer, and a batch for the reads
// in progress. PATH.lock is taken only to create or migrate the database.
const (
	// viewWait bounds how long a lookup waits for a batch of another run;
	// past it the lookup reads as "not known" (the ledger is a hint).
	viewWait = 10 * time.Second
	// batchWait is how long a batch during a run waits for the lock before
	// it is put back, to go with the next one.
	batchWait = time.Second
	// closeWait is how long the last batch (at Close) waits without
	// WaitForReaders.
	closeWait = time.Minute
	// viewLease is how long the lookups of a run reuse one read-only
	// opening of the file. Each opening maps the file and faults its pages
	// in again: at 20 ms a W1 sync opened it ~150 times, and the ledger
	// was ~15% of the run's CPU. Other runs' batches wait at most this
	// long for it (well within batchWait); this run's own batches close it
	// first.
	viewLease = 250 * time.Millisecond
	// migrateWait bounds the wait for another run creating or migrating
	// the database.
	migrateWait = time.Minute
)

// Option configures Open.
type Option func(*openOptions)

type openOptions struct {
	ctx     context.Context
	maxWait time.Duration
	notice  func()
}

func (o openOptions) context() context.Context {
	if o.ctx == nil {
		return context.Background()
	}
	return o.ctx
}

// WaitForReaders makes the last batch (at Close) wait up to maxWait, or
// until ctx ends, for the runs reading or writing the ledger, calling
// notice once when it starts to wait. Without it, it waits a minute.
func WaitForReaders(ctx context.Context, maxWait time.Duration, notice func()) Option {
	return func(o *openOptions) { o.ctx, o.maxWait, o.notice = ctx, maxWait, notice }
}

// openView opens the database read-only for one read.
func openView(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: viewWait})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, lockedError(path)
		}
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return db, nil
}

// openDB opens the database for one batch, waiting for the other runs'
// reads and batches up to wait (or, with notice set, as the options say).
func (l *Ledger) openDB(wait time.Duration, final bool) (*bolt.DB, error) {
	ctx := context.Background()
	if final {
		ctx = l.opts.context()
		wait = closeWait
		if l.opts.maxWait > 0 {
			wait = l.opts.maxWait
		}
	}
	deadline := time.Now().Add(wait)
	timeout := min(100*time.Millisecond, wait)
	for waited := false; ; waited = true {
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("ledger %s: %w", l.path, err)
		}
		// An interrupt ends the wait for other runs, but not before a short
		// grace: the last batch of an interrupted run is still worth
		// keeping, and a lookup's lease ends well within it.
		interrupted := ctx.Err() != nil && time.Since(deadline.Add(-wait)) >= finalGrace
		if interrupted || !time.Now().Before(deadline) {
			return nil, lockedError(l.path)
		}
		if !waited && final && l.opts.notice != nil {
			l.opts.notice()
		}
		timeout = 250 * time.Millisecond
	}
}

// finalGrace is how long the ledger is waited for even after an interrupt:
// the locks other runs hold for a batch or a creation end well within it.
const finalGrace = time.Second

func lockedError(path string) error {
	return fmt.Errorf("%w: %s stayed locked by other runs (another imagesync sync, plan or ledger export): wait for them to finish, or give another --ledger or --no-ledger", ErrLocked, path)
}
