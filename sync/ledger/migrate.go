package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The kinds of file a ledger path can hold.
const (
	kindMissing = iota
	kindEmpty
	kindJSONL
	kindStore
)

// detect tells what path holds, from its first bytes.
func detect(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return kindMissing, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("ledger %s: %w", path, err)
	}
	head = head[:n]
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(trimmed) == 0 && n < len(head):
		return kindEmpty, nil
	case len(trimmed) > 0 && trimmed[0] == '{':
		return kindJSONL, nil
	case n >= 20 && bytes.Equal(head[16:20], []byte{0xed, 0xda, 0x0c, 0xed}): // bbolt's magic, little-endian
		return kindStore, nil
	}
	return 0, fmt.Errorf("ledger %s: not an imagesync ledger (neither its database nor JSON lines): give another --ledger", path)
}

// locate returns the file to read the ledger from and what it holds: path
// itself, or for a missing PATH.db an older PATH.jsonl beside it.
func (l *Ledger) locate() (string, int, error) {
	kind, err := detect(l.path)
	if err != nil || kind != kindMissing {
		return l.path, kind, err
	}
	if base, ok := strings.CutSuffix(l.path, ".db"); ok {
		legacy := base + ".jsonl"
		if k, err := detect(legacy); err == nil && (k == kindJSONL || k == kindEmpty) {
			return legacy, k, nil
		}
	}
	return l.path, kindMissing, nil
}

// openStore opens the database at l.path, migrating a JSON-lines ledger.
func (l *Ledger) openStore() error {
	src, kind, err := l.locate()
	if err != nil {
		return err
	}
	switch kind {
	case kindEmpty:
		if src == l.path {
			if err := os.Remove(l.path); err != nil {
				return fmt.Errorf("ledger %s: %w", l.path, err)
			}
		}
	case kindJSONL:
		if err := l.migrate(src); err != nil {
			return err
		}
	case kindStore:
		// Already created: check it with a read, beside the runs using it
		// (a database of an older version that lacks a bucket goes on to
		// get it below).
		db, err := openView(l.path)
		if err != nil {
			return err
		}
		err = db.View(func(tx *bolt.Tx) error { return checkMeta(tx, l.path) })
		db.Close()
		if err == nil {
			l.store = true
			return nil
		}
	}
	db, err := l.openDB(0, true)
	if err != nil {
		return err
	}
	defer db.Close() // held for this batch only: runs share the ledger
	if err := os.Chmod(l.path, 0o600); err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return initStore(tx) }); err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	if err := db.View(func(tx *bolt.Tx) error { return checkMeta(tx, l.path) }); err != nil {
		return err
	}
	l.store = true
	return nil
}

// initStore creates the buckets and the version of a new database.
func initStore(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get([]byte("version")) == nil {
		if err := meta.Put([]byte("version"), []byte(strconv.Itoa(StoreVersion))); err != nil {
			return err
		}
		return meta.Put([]byte("created"), []byte(time.Now().UTC().Format(time.RFC3339)))
	}
	return nil
}

func checkMeta(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("ledger %s: not an imagesync ledger (no meta bucket): give another --ledger", path)
	}
	v, _ := strconv.Atoi(string(meta.Get([]byte("version"))))
	if v > StoreVersion {
		return fmt.Errorf("ledger %s was written by a newer imagesync (format %d, this one reads %d): give another --ledger", path, v, StoreVersion)
	}
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("ledger %s: damaged (no %s bucket): give another --ledger", path, b)
		}
	}
	return nil
}

// migrate turns the JSON-lines ledger src into a database at l.path: it is
// built in a temporary file beside it and renamed into place; src is then
// renamed to src.bak (a crash in between leaves src, which is migrated
// again at the next open).
func (l *Ledger) migrate(src string) error {
	dir := filepath.Dir(l.path)
	tmp, err := os.CreateTemp(dir, ".ledger-migrating-*")
	if err != nil {
		return fmt.Errorf("ledger %s: migrating: %w", l.path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmpName)
		}
	}()
	db, err := bolt.Open(tmpName, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("ledger %s: migrating: %w", l.path, err)
	}
	n, err := importJSONL(src, db, &l.warnings)
	// Random inserts leave pages half full: a copy in key order takes
	// about half the space.
	compact := tmpName + ".compact"
	defer os.Remove(compact)
	if err == nil {
		var cdb *bolt.DB
		if cdb, err = bolt.Open(compact, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType}); err == nil {
			err = bolt.Compact(cdb, db, 64<<20)
			if err == nil {
				cdb.NoSync = false
				err = cdb.Sync()
			}
			err = errors.Join(err, cdb.Close())
		}
	}
	err = errors.Join(err, db.Close()) // before the rename: Windows renames no open file
	if err == nil {
		err = os.Rename(compact, tmpName)
	}
	if err != nil {
		return fmt.Errorf("ledger %s: migrating %s: %w", l.path, src, err)
	}
	if err := os.Chmod(tmpName, 0o600); err != nil {
		return fmt.Errorf("ledger %s: migrating: %w", l.path, err)
	}
	backup := src + ".bak"
	if src == l.path {
		// keep the old file under its backup name before the new one
		// replaces it: a hard link, else a copy
		_ = os.Remove(backup)
		if err := os.Link(src, backup); err != nil {
			if err := copyFile(src, backup); err != nil {
				return fmt.Errorf("ledger %s: keeping the JSON-lines file as %s: %w", l.path, backup, err)
			}
		}
		if err := os.Rename(tmpName, l.path); err != nil {
			return fmt.Errorf("ledger %s: migrating: %w", l.path, err)
		}
	} else {
		if err := os.Rename(tmpName, l.path); err != nil {
			return fmt.Errorf("ledger %s: migrating: %w", l.path, err)
		}
		if err := os.Rename(src, backup); err != nil {
			l.warnings = append(l.warnings, fmt.Sprintf("ledger %s: migrated from %s, which could not be renamed to %s: %v", l.path, src, backup, err))
		}
	}
	done = true
	l.warnings = append(l.warnings, fmt.Sprintf("ledger %s: migrated %d records from the JSON-lines ledger %s to the indexed format; the old file is kept as %s", l.path, n, src, backup))
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Sync(), out.Close())
}

// importJSONL writes the records of a JSON-lines ledger into db, in
// transactions of a bounded size, and returns how many it read.
func importJSONL(src string, db *bolt.DB, warnings *[]string) (int, error) {
	const batch = 20_000
	var recs []record
	commit := func() error {
		err := db.Update(func(tx *bolt.Tx) error {
			if err := initStore(tx); err != nil {
				return err
			}
			// ids grow with each new repository: these fill pages in order
			for _, b := range [][]byte{bucketBlobs, bucketRepoIDs} {
				tx.Bucket(b).FillPercent = 0.95
			}
			for _, r := range recs {
				if err := applyTx(tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		recs = recs[:0]
		return err
	}
	var applyErr error
	n, err := readJSONL(src, func(r record) {
		if applyErr != nil {
			return
		}
		recs = append(recs, r)
		if len(recs) >= batch {
			applyErr = commit()
		}
	}, warnings)
	if err != nil {
		return n, err
	}
	if applyErr != nil {
		return n, applyErr
	}
	if err := commit(); err != nil {
		return n, err
	}
	return n, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte("migrated"), []byte(src+" at "+time.Now().UTC().Format(time.RFC3339)))
	})
}
