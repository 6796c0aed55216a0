package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imagesync/imagesync/oci"
)

// ensure makes dir a layout, creating it on the first write.
func (l *Layout) ensure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		// One writer per layout: a second run would race on index.json.
		// The lock file sits next to the layout, so the layout holds only
		// what the format says; the OS releases it if the run dies.
		if err := os.MkdirAll(filepath.Dir(l.abs), dirMode); err != nil {
			return err
		}
		lock, err := takeLock(l.path, l.abs+".lock")
		if err != nil {
			return err
		}
		l.lock = lock
	}
	root := l.root.Load()
	if l.restage {
		// A staging directory this program made (its marker says so) that a
		// killed run left before it was a layout: emptied, marker kept.
		if err := clearStaging(root); err != nil {
			return err
		}
		l.restage = false
	}
	if root == nil {
		var err error
		if root, err = l.create(); err != nil {
			return err
		}
		l.root.Store(root)
	}
	if !l.cleaned {
		l.cleaned = true
		removeStaleTemps(root, ".")
		for algo := range digestAlgos {
			removeStaleTemps(root, filepath.Join("blobs", algo))
		}
	}
	if l.ready {
		return nil
	}
	for _, d := range []string{"blobs", filepath.Join("blobs", "sha256")} {
		ok, err := checkDir(root, d)
		if err != nil {
			return &ConfigError{Path: l.path, Err: err}
		}
		if !ok {
			if err := root.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
	}
	if l.archive {
		l.staged = newIndex()
	}
	// index.json before oci-layout: a directory with oci-layout always has
	// an index.
	doc := l.index
	if l.archive {
		doc = l.staged
	}
	if err := writeFileAtomic(root, IndexFile, doc.encode()); err != nil {
		return err
	}
	if err := writeFileAtomic(root, LayoutFile, []byte(layoutVersion)); err != nil {
		return err
	}
	l.ready, l.exists, l.written = true, true, l.archive
	return nil
}

// create makes the layout directory (a directory layout's, or an
// archive's staging directory with its marker) and returns its root.
func (l *Layout) create() (*os.Root, error) {
	if !l.archive {
		if err := os.MkdirAll(l.dir, dirMode); err != nil {
			return nil, err
		}
		return os.OpenRoot(l.dir)
	}
	// Mkdir, not MkdirAll: a staging directory that appeared since the
	// archive was opened is someone else's.
	if err := os.Mkdir(l.dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, oci.Permanent(&ConfigError{Path: l.dir, Err: errors.New("appeared while this run was using the archive: not a staging directory this program made; nothing was deleted")})
		}
		return nil, err
	}
	made, err := os.Lstat(l.dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, err
	}
	if st, err := root.Stat("."); err != nil || !os.SameFile(made, st) { // replaced since the Mkdir
		root.Close()
		return nil, oci.Permanent(&ConfigError{Path: l.dir, Err: errors.New("replaced while this run created it; nothing was deleted")})
	}
	if err := writeFileAtomic(root, stagingMarker, []byte(markerText(l.abs))); err != nil {
		root.Close()
		return nil, err
	}
	return root, nil
}

// lookup returns the entry named name (see find); an ambiguous name is
// not found.
func (l *Layout) lookup(name string) (descriptor, bool) {
	e, err := l.find(name)
	if e == nil || err != nil {
		return descriptor{}, false
	}
	return e.desc, true
}

// setName points name at desc and rewrites index.json (atomically).
func (l *Layout) setName(name string, desc descriptor) error {
	if err := l.ensure(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.index.get(name); e != nil && e.desc.Digest == desc.Digest && e.desc.MediaType == desc.MediaType {
		return nil
	}
	desc.Annotations = map[string]string{AnnotationName: name}
	raw, _ := json.Marshal(desc)
	l.index.set(name, raw, desc)
	l.canonDirty = true
	doc := l.index
	if l.archive {
		l.staged.set(name, raw, desc)
		doc, l.written = l.staged, true
	}
	return writeFileAtomic(l.root.Load(), IndexFile, doc.encode())
}

// Finish completes an archive this run wrote to: the archive is rewritten
// (a temporary file renamed over it) with the old and the new content, and
// the staging directory removed. An archive nothing was added to is left
// untouched. A directory layout needs nothing.
// The run's lock on the layout is released.
func (l *Layout) Finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.unlock()
	if !l.archive || !l.written {
		return nil
	}
	if err := writeTar(l); err != nil {
		return fmt.Errorf("writing %s: %w", l.path, err)
	}
	l.written = false
	return nil
}

func (l *Layout) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.base != nil {
		l.base.close()
	}
	if r := l.root.Swap(nil); r != nil {
		r.Close()
	}
	l.unlock()
}

// unlock releases the run's lock on the layout, removing the lock file.
func (l *Layout) unlock() {
	if l.lock != nil {
		l.lock.release()
		l.lock = nil
	}
}

// blobPath is where a blob lives (for messages and tests).
func (l *Layout) blobPath(digest string) (string, error) {
	rel, err := l.blobRel(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(l.dir, rel), nil
}

// blobRel is where a blob lives in dir, relative to it.
func (l *Layout) blobRel(digest string) (string, error) {
	algo, hx, ok := splitDigest(digest)
	if !ok {
		return "", oci.Permanent(fmt.Errorf("unsupported digest %q", digest))
	}
	return filepath.Join("blobs", algo, hx), nil
}

// hasBlob reports whether the layout holds the blob (as a regular file).
func (l *Layout) hasBlob(digest string) (bool, error) {
	p, err := l.blobRel(digest)
	if err != nil {
		return false, err
	}
	if root := l.root.Load(); root != nil {
		fi, err := root.Lstat(p)
		switch {
		case err == nil && fi.Mode().IsRegular():
			return true, nil
		case err == nil:
			return false, oci.Permanent(fmt.Errorf("%s: %w", l.path, errNotRegular(p, fi)))
		case !errors.Is(err, fs.ErrNotExist):
			return false, err
		}
	}
	if l.base != nil {
		_, ok := l.base.blobs[digest]
		return ok, nil
	}
	return false, nil
}

// openBlob opens a blob for reading (a regular file only: never a FIFO, a
// device or a link), and says where it is (for messages). The reader ends
// at the size it had when opened.
func (l *Layout) openBlob(digest string) (io.ReadCloser, int64, string, error) {
	p, err := l.blobRel(digest)
	if err != nil {
		return nil, 0, "", err
	}
	where := filepath.Join(l.dir, p)
	if root := l.root.Load(); root != nil {
		f, size, err := openRegular(root, p)
		if err == nil {
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(f, size), f}, size, where, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, where, oci.Permanent(fmt.Errorf("%s: %w", l.path, err))
		}
	}
	if l.base != nil {
		if rc, size, ok := l.base.open(digest); ok {
			return rc, size, l.path + ":" + tarBlobName(digest), nil
		}
	}
	return nil, 0, where, missing(l.path + ": blob " + digest)
}

// readManifest reads a manifest blob whole and checks its digest.
func (l *Layout) readManifest(digest string) ([]byte, error) {
	rc, size, where, err := l.openBlob(digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxManifest {
		return nil, oci.Permanent(fmt.Errorf("%s: manifest larger than %d bytes", where, maxManifest))
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if got := digestOf(digest, raw); got != digest {
		return nil, oci.Permanent(fmt.Errorf("%s: corrupt: its bytes hash to %s", where, got))
	}
	return raw, nil
}
