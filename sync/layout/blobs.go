package layout

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagesync/imagesync/oci"
)

// tempPrefix starts the names of files being written; they are never read
// as blobs and are removed when a later run finds them stale.
const tempPrefix = ".tmp-"

// digestAlgos are the digest algorithms a layout stores blobs under (the
// OCI image spec's registered ones), with their hex length.
var digestAlgos = map[string]int{"sha256": 64, "sha512": 128}

// splitDigest checks a digest and returns its algorithm and hex.
func splitDigest(digest string) (algo, hx string, ok bool) {
	algo, hx, ok = strings.Cut(digest, ":")
	n, known := digestAlgos[algo]
	if !ok || !known || len(hx) != n || strings.Trim(hx, "0123456789abcdef") != "" {
		return "", "", false
	}
	return algo, hx, true
}

func newHash(algo string) hash.Hash {
	if algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// digestOf hashes b with the algorithm of digest (sha256 when unknown).
func digestOf(digest string, b []byte) string {
	algo, _, ok := splitDigest(digest)
	if !ok {
		return oci.Digest(b)
	}
	h := newHash(algo)
	h.Write(b)
	return algo + ":" + hex.EncodeToString(h.Sum(nil))
}

// writeBlob streams body into the layout: a temporary file in the blob
// directory, hashed while written, synced, and renamed to its digest only
// when digest and size (when size >= 0) match. It returns the bytes written.
func (l *Layout) writeBlob(ctx context.Context, digest string, size int64, body io.Reader) (int64, error) {
	final, err := l.blobRel(digest)
	if err != nil {
		return 0, err
	}
	root := l.root.Load()
	if root == nil {
		return 0, fmt.Errorf("%s: layout not created", l.path)
	}
	dir := filepath.Dir(final)
	if ok, err := checkDir(root, dir); err != nil {
		return 0, oci.Permanent(fmt.Errorf("%s: %w", l.path, err))
	} else if !ok {
		if err := root.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, err
		}
	}
	f, tmp, err := createTemp(root, dir, filepath.Base(final)[:12])
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			root.Remove(tmp)
		}
	}()
	algo, _, _ := splitDigest(digest)
	h := newHash(algo)
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: body})
	if err != nil {
		return n, err
	}
	if got := algo + ":" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, oci.Permanent(fmt.Errorf("blob %s: received bytes hash to %s", digest, got))
	}
	if size >= 0 && n != size {
		return n, oci.Permanent(fmt.Errorf("blob %s: received %d bytes, want %d", digest, n, size))
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	err = f.Close()
	done = true
	if err == nil {
		err = renameInRoot(root, tmp, final)
	}
	if err != nil {
		root.Remove(tmp)
		return n, err
	}
	syncDir(root, dir)
	return n, nil
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

// removeUnless closes and removes the temporary file f (at path) unless
// *keep became true (it was renamed into place).
func removeUnless(keep *bool, f *os.File) {
	if !*keep {
		f.Close()
		os.Remove(f.Name())
	}
}
