package layout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// tarLayout is an archive of a layout read in place: its headers are read
// once (the data is skipped with seeks), and every blob is then streamed
// straight from its section of the file, never extracted.
type tarLayout struct {
	f     *os.File
	blobs map[string]section // digest → where its bytes are
	index *indexDoc
}

type section struct{ off, size int64 }

func tarBlobName(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return "blobs/" + algo + "/" + hex
}

func openTar(p string) (*tarLayout, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, err
	}
	t, err := readTar(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

func readTar(f *os.File) (*tarLayout, error) {
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		return nil, errors.New("a compressed archive: oci-archive reads an uncompressed tar (gunzip it first)")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	t := &tarLayout{f: f, blobs: map[string]section{}}
	tr := tar.NewReader(f)
	var layoutFile, indexFile []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive of an OCI image layout: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch {
		case name == LayoutFile:
			if layoutFile, err = io.ReadAll(io.LimitReader(tr, 4096)); err != nil {
				return nil, err
			}
		case name == IndexFile:
			if indexFile, err = io.ReadAll(io.LimitReader(tr, maxIndexSize+1)); err != nil {
				return nil, err
			}
		case strings.HasPrefix(name, "blobs/"):
			algo, hex, ok := strings.Cut(strings.TrimPrefix(name, "blobs/"), "/")
			if _, _, valid := splitDigest(algo + ":" + hex); !ok || !valid {
				continue // not a blob (a README, a digest of an unknown algorithm)
			}
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			t.blobs[algo+":"+hex] = section{off: off, size: h.Size}
		}
	}
	if layoutFile == nil {
		return nil, fmt.Errorf("not a tar archive of an OCI image layout (no %s)", LayoutFile)
	}
	if err := checkLayoutFile(layoutFile); err != nil {
		return nil, err
	}
	if indexFile == nil {
		return nil, fmt.Errorf("not a valid OCI image layout archive: %s is missing", IndexFile)
	}
	idx, err := readIndex(bytes.NewReader(indexFile))
	if err != nil {
		return nil, err
	}
	t.index = idx
	return t, nil
}

func (t *tarLayout) open(digest string) (io.ReadCloser, int64, bool) {
	s, ok := t.blobs[digest]
	if !ok {
		return nil, 0, false
	}
	return io.NopCloser(io.NewSectionReader(t.f, s.off, s.size)), s.size, true
}

func (t *tarLayout) close() { t.f.Close() }

// archiveDigests lists, sorted, every blob the new archive holds: those
// its index reaches (each entry, and what manifests and indexes name),
// whether staged by this run or in the archive it replaces. Anything else
// the old archive held is not carried over.
func archiveDigests(l *Layout) ([]string, error) {
	blobs := map[string]bool{}
	var walk func(digest string) error
	walk = func(digest string) error {
		if blobs[digest] {
			return nil
		}
		blobs[digest] = true
		raw, err := l.readManifest(digest)
		if err != nil {
			return nil // kept as it is when present (a damaged entry is not fixed here)
		}
		children, leaves, err := references(raw)
		if err != nil {
			return nil // an entry that is not a manifest: carried as it is
		}
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		for _, d := range leaves {
			if ok, err := l.hasBlob(d); err != nil {
				return err
			} else if ok {
				blobs[d] = true
			}
		}
		return nil
	}
	for _, e := range l.index.entries {
		if err := walk(e.desc.Digest); err != nil {
			return nil, err
		}
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		if ok, _ := l.hasBlob(d); ok {
			digests = append(digests, d)
		}
	}
	sort.Strings(digests)
	return digests, nil
}

// writeTarEntries writes the layout's files into tw: the two folders,
// oci-layout, index.json and each blob in digests.
func writeTarEntries(tw *tar.Writer, l *Layout, digests []string) error {
	mtime := time.Unix(0, 0)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: %d bytes, want %d", name, n, size)
		}
		return err
	}
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range digests {
		if strings.HasPrefix(d, "sha512:") {
			dirs = append(dirs, "blobs/sha512/")
			break
		}
	}
	for _, dir := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := add(LayoutFile, int64(len(layoutVersion)), strings.NewReader(layoutVersion)); err != nil {
		return err
	}
	idx := l.index.encode()
	if err := add(IndexFile, int64(len(idx)), bytes.NewReader(idx)); err != nil {
		return err
	}
	for _, d := range digests {
		rc, size, _, err := l.openBlob(d)
		if err != nil {
			return err
		}
		err = add(tarBlobName(d), size, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func writeTar(l *Layout) error {
	digests, err := archiveDigests(l)
	if err != nil {
		return err
	}
	// A new name (O_EXCL: never a file or link already there), with the
	// umask's mode.
	var f *os.File
	for range 100 {
		f, err = os.OpenFile(filepath.Join(filepath.Dir(l.abs), tempName(filepath.Base(l.abs))), os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer removeUnless(&ok, f)
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	if err := writeTarEntries(tw, l, digests); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if l.base != nil {
		l.base.close() // Windows cannot replace an open file
		l.base = nil
	}
	if err := os.Rename(tmp, l.abs); err != nil {
		if rerr := os.Remove(l.abs); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
			err = os.Rename(tmp, l.abs)
		}
		if err != nil {
			return err
		}
	}
	ok = true
	syncPath(filepath.Dir(l.abs))
	// The staging directory is ours (openStaging or create checked it).
	if r := l.root.Swap(nil); r != nil {
		r.Close()
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return err
	}
	// Read the new archive back in place, so this run can go on using it.
	t, err := openTar(l.abs)
	if err != nil {
		return err
	}
	l.base, l.ready, l.staged = t, false, nil
	return nil
}
