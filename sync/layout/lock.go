package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/gofrs/flock"

	"github.com/imagesync/imagesync/oci"
)

// layoutLock is a run's lock on a layout: the file DIR.lock (FILE.lock)
// beside it, locked with flock, never opened through a symbolic link, and
// removed when the run lets go, so that a clean run leaves nothing behind.
type layoutLock struct {
	path string
	fl   *flock.Flock
}

// takeLock locks path for one run, or fails when another run holds it.
// A lock file another run removed between our open and our lock is not the
// lock any more (the next run would create a new one): try again.
func takeLock(name, path string) (*layoutLock, error) {
	for range 5 {
		if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
			return nil, oci.Permanent(&ConfigError{Path: path, Err: errNotRegular(path, fi)})
		}
		fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR|noFollow), flock.SetPermissions(fileMode))
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("%s: locking %s: %w", name, path, err)
		}
		if !ok {
			return nil, oci.Permanent(fmt.Errorf("%s is being written by another imagesync run (lock %s)", name, path))
		}
		held, err1 := fl.Stat()
		now, err2 := os.Lstat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &layoutLock{path: path, fl: fl}, nil
		}
		_ = fl.Close()
	}
	return nil, oci.Permanent(fmt.Errorf("%s: the lock file %s keeps being replaced", name, path))
}

// release removes the lock file (only while it is still ours) and unlocks.
func (k *layoutLock) release() {
	held, err1 := k.fl.Stat()
	now, err2 := os.Lstat(k.path)
	ours := err1 == nil && err2 == nil && os.SameFile(held, now)
	if ours && runtime.GOOS != "windows" {
		_ = os.Remove(k.path) // while locked: the next run creates a new one
	}
	_ = k.fl.Close()
	if ours && runtime.GOOS == "windows" { // an open file cannot be removed there
		if err := os.Remove(k.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
