package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Readers (plan, ledger export, ledger stats: OpenReadOnly) read the
// database in place under bbolt's shared lock, held until they close it,
// so that opening a ledger of a million images costs no copy and no
// memory. A writer (Open) first takes PATH.lock, which only writers take:
// a writer that holds it and still finds the database locked is waiting
// for readers, which end on their own — with WaitForReaders it waits.

// Option configures Open.
type Option func(*openOptions)

type openOptions struct {
	ctx     context.Context
	maxWait time.Duration
	notice  func()
}

// WaitForReaders makes Open wait, up to maxWait or until ctx ends, for the
// readers holding the database, calling notice once when it starts to
// wait. Without it, Open refuses at once (ErrLocked).
func WaitForReaders(ctx context.Context, maxWait time.Duration, notice func()) Option {
	return func(o *openOptions) { o.ctx, o.maxWait, o.notice = ctx, maxWait, notice }
}

// openDB opens the database for writing, waiting for readers as the
// options say.
func (l *Ledger) openDB() (*bolt.DB, error) {
	o := l.opts
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	deadline := time.Now().Add(o.maxWait)
	timeout := 100 * time.Millisecond
	for waited := false; ; waited = true {
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
		if err == nil {
			return db, nil
		}
		if !errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("ledger %s: %w", l.path, err)
		}
		if o.ctx.Err() != nil || !time.Now().Before(deadline) {
			return nil, readersError(l.path)
		}
		if !waited && o.notice != nil {
			o.notice()
		}
		timeout = 250 * time.Millisecond
	}
}

func readersError(path string) error {
	return fmt.Errorf("%w: %s is being read by another imagesync (plan, ledger export or ledger stats): wait for it to finish, or give another --ledger or --no-ledger", ErrLocked, path)
}
