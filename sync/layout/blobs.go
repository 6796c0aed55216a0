package layout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/imagesync/imagesync/registry/client"
)

// tempPrefix starts the names of files being written; they are never read
// as blobs and are removed when a later run finds them stale.
const tempPrefix = ".tmp-"

// writeBlob streams body into the layout: a temporary file in the blob
// directory, hashed while written, synced, and renamed to its digest only
// when digest and size (when size >= 0) match. It returns the bytes written.
func (l *Layout) writeBlob(ctx context.Context, digest string, size int64, body io.Reader) (int64, error) {
	final, err := l.blobPath(digest)
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(final), tempPrefix+filepath.Base(final)[:12]+"-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	done := false
	defer removeUnless(&done, f)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: body})
	if err != nil {
		return n, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, client.Permanent(fmt.Errorf("blob %s: received bytes hash to %s", digest, got))
	}
	if size >= 0 && n != size {
		return n, client.Permanent(fmt.Errorf("blob %s: received %d bytes, want %d", digest, n, size))
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	done = true
	if err := rename(tmp, final); err != nil {
		os.Remove(tmp)
		return n, err
	}
	syncDir(filepath.Dir(final))
	return n, nil
}

// rename moves a finished file into place, replacing a damaged one (on
// Windows, which does not replace files, by removing it first).
func rename(tmp, final string) error {
	err := os.Rename(tmp, final)
	if err != nil && runtime.GOOS == "windows" {
		if rerr := os.Remove(final); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
			err = os.Rename(tmp, final)
		}
	}
	return err
}

// writeFileAtomic replaces path with b: a synced temporary file renamed over it.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		if runtime.GOOS == "windows" { // no atomic replace: remove, then rename
			if rerr := os.Remove(path); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
				err = os.Rename(tmp, path)
			}
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable (not possible, and not needed, on Windows).
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// removeStaleTemps removes temporary files a killed run left in dir that
// are older than an hour (younger ones may belong to a run in progress).
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ctxReader stops a copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// removeUnless closes and removes the temporary file f unless *keep became
// true (it was renamed into place).
func removeUnless(keep *bool, f *os.File) {
	if !*keep {
		f.Close()
		os.Remove(f.Name())
	}
}
