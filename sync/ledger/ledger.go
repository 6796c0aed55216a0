// Package ledger is the digest ledger: an indexed single-file store
// (go.etcd.io/bbolt) that remembers what each destination holds (manifest
// digests per reference, blobs per repository) so that a re-run can skip
// work without asking the destination, and verify can check a mirror
// without the source. Lookups read only the pages they need, so a ledger of
// a million images opens at once and costs little memory.
//
// New facts are visible at once to this process and reach the file in
// batches (one transaction, fsync'd, every flushDelay or flushRecords
// facts, and at Close): a crash loses at most the last batch, never the
// file. No run holds the file between its reads and batches: a lookup
// opens it read-only for that lookup, a batch opens it for writing for
// that batch, so unrelated runs (two syncs, a sync and a plan or ledger
// export) share one ledger, each recording what it did. Ledgers of the older JSON-lines format are migrated on first open
// (the old file is kept as PATH.bak); `imagesync ledger export` writes
// that format back.
//
// The ledger is a hint, never the truth: entries a registry contradicts are
// invalidated and the work is redone. It holds references and digests,
// and, for a large blob whose upload a run left unfinished, the upload
// session's location on the destination registry, without its query, its
// offset and the blob's hash state there (a session on another host, or
// whose location carries signature-like parameters, is never recorded;
// see Upload) — never credentials. Sessions are not exported.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	bolt "go.etcd.io/bbolt"
)

// Version is the format version of the JSON-lines form (the header record
// of `imagesync ledger export` and of the files older versions wrote).
const Version = 1

// StoreVersion is the format version of the database file.
const StoreVersion = 2

// Batching of writes: a batch is committed (and fsync'd) this long after its
// first fact, or at once when it holds this many.
const (
	flushDelay   = 200 * time.Millisecond
	flushRecords = 4096
)

// Entry is what the ledger knows of a destination reference.
type Entry struct {
	Digest    string
	Src       string
	SrcDigest string
	Filter    string
	Time      time.Time
}

// Ledger is an open ledger. A nil *Ledger is a valid ledger that knows
// nothing and records nothing (--no-ledger).
type Ledger struct {
	path     string
	store    bool // path holds the database (false: a read-only view of a missing or JSON-lines ledger)
	readOnly bool
	opts     openOptions
	warnings []string

	flushMu sync.Mutex // one commit at a time

	writing   atomic.Bool // a batch is waiting for or holding the file
	viewMu    sync.Mutex
	viewDB    *bolt.DB // read-only handle kept by view for viewLease
	viewTx    *bolt.Tx // its read transaction, for the same lease
	viewTimer *time.Timer

	mu       sync.Mutex
	base     *layer // read-only view of a JSON-lines ledger, all in memory
	pending  *layer // facts not yet handed to a commit
	flushing *layer // facts of the commit in progress
	timer    *time.Timer
	flushErr error
	closed   bool
	guard    func(string) string // the run's redactor; nil: none
	withheld int                 // records not written because they held a secret
}

// Guard passes every record through redact (the run's output redactor)
// before it is recorded. A record the redactor would change holds a known
// secret: it is not recorded at all (a redacted reference would be a wrong
// one), and the run only forgets that fact — the next run asks the
// registry instead.
func (l *Ledger) Guard(redact func(string) string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.guard = redact
}

// Withheld returns how many records Guard kept out of the file.
func (l *Ledger) Withheld() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.withheld
}

// DefaultPath is the ledger used when --ledger is not given. A ledger.jsonl
// beside it (what older versions used) is migrated on first open.
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the ledger (give --ledger or --no-ledger): %w", err)
	}
	return filepath.Join(dir, "imagesync", "ledger.db"), nil
}

// ResolvePath returns the absolute path a ledger path stands for, with
// every symlink resolved (of the file when it exists, else of its folder).
func ResolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		// a dangling symlink: follow it one step, the target is created
		target, err := os.Readlink(abs)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		return ResolvePath(target)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// ErrLocked is returned when the ledger stayed locked by other runs for
// longer than a batch may wait.
var ErrLocked = errors.New("ledger is in use by another imagesync run")

// ErrReadOnly is returned by the Record methods of a read-only ledger.
var ErrReadOnly = errors.New("ledger is open read-only")

// Open opens the ledger at path for a run that records, creating it (mode
// 0600) if needed. A JSON-lines ledger at path (or, for a path ending in
// .db, at the same path ending in .jsonl) is migrated first, under
// PATH.lock (the only time a run locks the ledger for more than a batch);
// problems met while reading it are reported by Warnings. Other runs may
// use the ledger at the same time: each batch waits for the others' batches
// and reads (WaitForReaders says how long Close waits for the last one).
func Open(path string, opts ...Option) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// Every write, a migration included, goes to the file the path resolves
	// to: a symlink to a ledger in use meets the same locks.
	resolved, err := ResolvePath(path)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	path = resolved
	l := &Ledger{path: path, pending: newLayer()}
	for _, o := range opts {
		o(&l.opts)
	}
	lock := flock.New(path + ".lock")
	ok, err := lock.TryLock() // at once, even for a run already interrupted
	if !ok && err == nil {    // another run creates or migrates it: wait for that
		ctx, cancel := context.WithTimeout(l.opts.context(), migrateWait)
		defer cancel()
		ok, err = lock.TryLockContext(ctx, 50*time.Millisecond)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger %s: locking: %w", path, err)
	}
	if !ok {
		return nil, lockedError(path)
	}
	defer func() { _ = lock.Unlock() }()
	if err := l.openStore(); err != nil {
		return nil, err
	}
	return l, nil
}

// OpenReadOnly opens the ledger at path for lookups only, writing nothing:
// a missing ledger knows nothing, a JSON-lines ledger is read into memory
// (not migrated), a database is read in place, page by page, each lookup
// under bbolt's shared lock for that lookup only: however large the
// ledger, opening costs no copy and no memory, and runs that write it go
// on meanwhile (a reader waits at most for one of their batches).
func OpenReadOnly(path string) (*Ledger, error) {
	if resolved, err := ResolvePath(path); err == nil {
		path = resolved
	} else if !errors.Is(err, os.ErrNotExist) { // a missing folder: nothing recorded yet
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	l := &Ledger{path: path, readOnly: true, pending: newLayer()}
	src, kind, err := l.locate()
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindMissing, kindEmpty:
		return l, nil
	case kindJSONL:
		l.base = newLayer()
		if _, err := readJSONL(src, l.base.apply, &l.warnings); err != nil {
			return nil, err
		}
		return l, nil
	}
	db, err := openView(path)
	if err != nil {
		return nil, err
	}
	err = db.View(func(tx *bolt.Tx) error { return checkMeta(tx, path) })
	db.Close()
	if err != nil {
		return nil, err
	}
	l.store = true
	return l, nil
}

// Warnings are the non-fatal problems met while opening.
func (l *Ledger) Warnings() []string {
	if l == nil {
		return nil
	}
	return l.warnings
}

// Path returns the file the ledger lives in.
func (l *Ledger) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}
