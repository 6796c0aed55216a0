package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gofrs/flock"

	"github.com/imagesync/imagesync/registry/client"
)

// ensure makes dir a layout, creating it on the first write.
func (l *Layout) ensure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		// One writer per layout: a second run would race on index.json.
		// The lock file sits next to the layout, so the layout holds only
		// what the format says; the OS releases it if the run dies.
		if err := os.MkdirAll(filepath.Dir(l.abs), 0o755); err != nil {
			return err
		}
		lock := flock.New(l.abs + ".lock")
		ok, err := lock.TryLock()
		if err != nil {
			return fmt.Errorf("%s: locking: %w", l.path, err)
		}
		if !ok {
			return client.Permanent(fmt.Errorf("%s is being written by another imagesync run (lock %s)", l.path, l.abs+".lock"))
		}
		l.lock = lock
	}
	if l.restage {
		if err := os.RemoveAll(l.dir); err != nil {
			return err
		}
		l.restage = false
	}
	if !l.cleaned {
		l.cleaned = true
		removeStaleTemps(l.dir)
		removeStaleTemps(filepath.Join(l.dir, "blobs", "sha256"))
	}
	if l.ready {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "blobs", "sha256"), 0o755); err != nil {
		return err
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
	if err := writeFileAtomic(filepath.Join(l.dir, IndexFile), doc.encode()); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(l.dir, LayoutFile), []byte(layoutVersion)); err != nil {
		return err
	}
	l.ready, l.exists, l.written = true, true, l.archive
	return nil
}

// lookup returns the entry named name.
func (l *Layout) lookup(name string) (descriptor, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.index.get(name)
	if e == nil {
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
	doc := l.index
	if l.archive {
		l.staged.set(name, raw, desc)
		doc, l.written = l.staged, true
	}
	return writeFileAtomic(filepath.Join(l.dir, IndexFile), doc.encode())
}

// Finish completes an archive this run wrote to: the archive is rewritten
// (a temporary file renamed over it) with the old and the new content, and
// the staging directory removed. An archive nothing was added to is left
// untouched. A directory layout needs nothing.
// The run's lock on the layout is released.
func (l *Layout) Finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() {
		if l.lock != nil {
			_ = l.lock.Unlock()
			l.lock = nil
		}
	}()
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
	if l.lock != nil {
		_ = l.lock.Unlock()
		l.lock = nil
	}
}

// blobPath is where a blob lives in dir.
func (l *Layout) blobPath(digest string) (string, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", client.Permanent(fmt.Errorf("unsupported digest %q", digest))
	}
	return filepath.Join(l.dir, "blobs", algo, hex), nil
}

// hasBlob reports whether the layout holds the blob.
func (l *Layout) hasBlob(digest string) (bool, error) {
	p, err := l.blobPath(digest)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if l.base != nil {
		_, ok := l.base.blobs[digest]
		return ok, nil
	}
	return false, nil
}

// openBlob opens a blob for reading, and says where it is (for messages).
func (l *Layout) openBlob(digest string) (io.ReadCloser, int64, string, error) {
	p, err := l.blobPath(digest)
	if err != nil {
		return nil, 0, "", err
	}
	f, err := os.Open(p)
	if err == nil {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, p, err
		}
		return f, st.Size(), p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, p, err
	}
	if l.base != nil {
		if rc, size, ok := l.base.open(digest); ok {
			return rc, size, l.path + ":" + tarBlobName(digest), nil
		}
	}
	return nil, 0, p, missing(l.path + ": blob " + digest)
}

// readManifest reads a manifest blob whole and checks its digest.
func (l *Layout) readManifest(digest string) ([]byte, error) {
	rc, size, where, err := l.openBlob(digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxManifest {
		return nil, client.Permanent(fmt.Errorf("%s: manifest larger than %d bytes", where, maxManifest))
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if got := client.Digest(raw); got != digest {
		return nil, client.Permanent(fmt.Errorf("%s: corrupt: its bytes hash to %s", where, got))
	}
	return raw, nil
}

// stagedBlobs lists the blobs in dir (the staging directory of an archive).
func (l *Layout) stagedBlobs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(l.dir, "blobs", "sha256"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && len(e.Name()) == 64 && strings.Trim(e.Name(), "0123456789abcdef") == "" {
			out = append(out, "sha256:"+e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
