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
// file. Ledgers of the older JSON-lines format are migrated on first open
// (the old file is kept as PATH.bak); `imagesync ledger export` writes
// that format back.
//
// The ledger is a hint, never the truth: entries a registry contradicts are
// invalidated and the work is redone. It holds references and digests only,
// never credentials.
package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
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

// Ledger is an open, locked ledger. A nil *Ledger is a valid ledger that
// knows nothing and records nothing (--no-ledger).
type Ledger struct {
	path     string
	lock     *flock.Flock // nil when opened read-only
	db       *bolt.DB     // nil: nothing stored (read-only view of a missing or JSON-lines ledger)
	readOnly bool
	opts     openOptions
	warnings []string

	flushMu sync.Mutex // one commit at a time

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

// ErrLocked is returned when another run holds the ledger.
var ErrLocked = errors.New("ledger is in use by another imagesync run")

// ErrReadOnly is returned by the Record methods of a read-only ledger.
var ErrReadOnly = errors.New("ledger is open read-only")

// Open locks and opens the ledger at path, creating it (mode 0600) if
// needed. A JSON-lines ledger at path (or, for a path ending in .db, at the
// same path ending in .jsonl) is migrated first; problems met while reading
// it are reported by Warnings. A ledger another run writes is refused
// (ErrLocked); one that readers hold is too, unless WaitForReaders says to
// wait for them.
func Open(path string, opts ...Option) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// The lock (and every write, a migration included) goes to the file the
	// path resolves to: a symlink to a ledger in use meets the same lock.
	resolved, err := ResolvePath(path)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	path = resolved
	lock := flock.New(path + ".lock")
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("ledger %s: locking: %w", path, err)
	}
	if !ok {
		return nil, lockedError(path)
	}
	l := &Ledger{path: path, lock: lock, pending: newLayer()}
	for _, o := range opts {
		o(&l.opts)
	}
	if err := l.openStore(); err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	return l, nil
}

// OpenReadOnly opens the ledger at path for lookups only, writing nothing:
// a missing ledger knows nothing, a JSON-lines ledger is read into memory
// (not migrated), a database is read in place, page by page, under bbolt's
// shared lock, held until Close: however large the ledger, opening costs
// no copy and no memory. A database a run is writing is refused
// (ErrLocked), and so is a run that would write while a reader holds it.
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
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, lockedError(path)
		}
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	l.db = db
	if err := db.View(func(tx *bolt.Tx) error { return checkMeta(tx, path) }); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

func lockedError(path string) error {
	return fmt.Errorf("%w: %s (wait for it to finish, or give another --ledger or --no-ledger)", ErrLocked, path)
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
