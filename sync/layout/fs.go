package layout

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"time"
)

// A layout is often a shared folder or a directory someone else handed
// over, so nothing in it is trusted: every file the layout reads or writes
// is reached through an *os.Root of the layout directory (no path, and no
// symbolic link inside it, can lead outside), the layout's own directories
// (blobs, blobs/sha256, …) are refused when they are symbolic links, only
// regular files are read (never a FIFO, a device or a link to one), every
// read is bounded by the file's size or a small cap, and the only files a
// run removes are the temporary files and staging directories it made.

// Modes of what a layout writes: the umask decides, as for skopeo and oras
// (0644 files and 0755 directories with the usual 022).
const (
	fileMode = 0o666
	dirMode  = 0o777
)

// maxLayoutFile bounds the oci-layout file (a few dozen bytes).
const maxLayoutFile = 4096

// errNotRegular is a layout path that is something else than what the
// layout format puts there.
func errNotRegular(rel string, fi fs.FileInfo) error {
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link (a layout's own paths are never followed)"
	case m&fs.ModeNamedPipe != 0:
		what = "a FIFO, not a regular file"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		what = "a device, not a regular file"
	case m.IsDir():
		what = "a directory, not a regular file"
	}
	return fmt.Errorf("%s is %s", filepath.ToSlash(rel), what)
}

// checkDir fails unless rel (inside root) is a directory itself, not a
// symbolic link to one; a missing one is fine (ok false).
func checkDir(root *os.Root, rel string) (ok bool, err error) {
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
		what := "not a directory"
		if fi.Mode()&fs.ModeSymlink != 0 {
			what = "a symbolic link (a layout's own paths are never followed)"
		}
		return false, fmt.Errorf("%s is %s", filepath.ToSlash(rel), what)
	}
	return true, nil
}

// openRegular opens rel inside root for reading, only when it is a regular
// file: never through a final symbolic link, and without blocking on a
// FIFO. The size is the file's.
func openRegular(root *os.Root, rel string) (*os.File, int64, error) {
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, errNotRegular(rel, fi)
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|openReadFlags, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() { // swapped since the Lstat
		f.Close()
		return nil, 0, errNotRegular(rel, st)
	}
	return f, st.Size(), nil
}

// readSmall reads a regular file rel inside root whole, failing past max bytes.
func readSmall(root *os.Root, rel string, max int64) ([]byte, error) {
	f, size, err := openRegular(root, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.ToSlash(rel), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.ToSlash(rel), err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.ToSlash(rel), max)
	}
	return b, nil
}

// tempName is a name for a temporary file: tempPrefix, a hint, and a random
// number. removeStaleTemps removes only names of this form.
func tempName(hint string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return tempPrefix + hint + "-" + hex.EncodeToString(b[:])
}

// tempPattern is compiled on first use: its 160-fold repetition cost every
// start of the binary 0.3 ms in an init.
var tempPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\.tmp-[A-Za-z0-9._-]{1,160}-[0-9a-f]{1,20}$`)
})

// createTemp creates a new temporary file in dir (inside root), with the
// umask's mode; O_EXCL never opens something already there (nor a link).
func createTemp(root *os.Root, dir, hint string) (*os.File, string, error) {
	for range 100 {
		rel := filepath.Join(dir, tempName(hint))
		f, err := root.OpenFile(rel, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, rel, err
	}
	return nil, "", fmt.Errorf("%s: cannot create a temporary file", dir)
}

// renameInRoot moves a finished file into place, replacing a damaged one
// (on Windows, which does not replace files, by removing it first).
func renameInRoot(root *os.Root, tmp, final string) error {
	err := root.Rename(tmp, final)
	if err != nil && runtime.GOOS == "windows" {
		if rerr := root.Remove(final); rerr == nil || errors.Is(rerr, fs.ErrNotExist) {
			err = root.Rename(tmp, final)
		}
	}
	return err
}

// writeFileAtomic replaces rel (inside root) with b: a synced temporary
// file renamed over it.
func writeFileAtomic(root *os.Root, rel string, b []byte) error {
	f, tmp, err := createTemp(root, filepath.Dir(rel), filepath.Base(rel))
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameInRoot(root, tmp, rel)
	}
	if err != nil {
		root.Remove(tmp)
		return err
	}
	syncDir(root, filepath.Dir(rel))
	return nil
}

// syncDir makes a rename in dir durable (not possible, and not needed, on Windows).
func syncDir(root *os.Root, dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := root.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// syncPath is syncDir for a directory outside any layout (an archive's).
func syncPath(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// removeStaleTemps removes temporary files a killed run left in dir (inside
// root): regular files named as this program names them, owned by this
// user, older than an hour (younger ones may belong to a run in progress).
// Nothing else is touched, and nothing outside the layout can be.
func removeStaleTemps(root *os.Root, dir string) {
	if ok, err := checkDir(root, dir); !ok || err != nil {
		return
	}
	d, err := root.Open(dir)
	if err != nil {
		return
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	for _, e := range entries {
		if !tempPattern().MatchString(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		rel := filepath.Join(dir, e.Name())
		if fi, err := root.Lstat(rel); err == nil && fi.Mode().IsRegular() && ownedByUs(fi) && time.Since(fi.ModTime()) > time.Hour {
			root.Remove(rel)
		}
	}
}
