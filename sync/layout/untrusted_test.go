//go:build unix

package layout

import (
	"archive/tar"
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/registry/client"
)

// Tests of issue #22: a layout, an archive and what sits beside them are
// untrusted input, crafted here (symbolic links, FIFOs, sparse files,
// /dev/zero). Nothing outside the layout may be created, changed or
// deleted: every test snapshots what it places outside and compares.

// tree records every path under root (not following links): type, mode,
// size, mtime, content or link target.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outside makes a directory beside the layout with a file and a stale
// temporary file in it (as the cleanup would name one), and returns it
// with a check that nothing in it changed.
func outside(t *testing.T) (string, func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "victim")
	_ = os.MkdirAll(dir, 0o755)
	writeOld(t, filepath.Join(dir, ".tmp-abcdef012345-1234567890"), "not yours")
	writeOld(t, filepath.Join(dir, "precious"), "keep me")
	_ = os.MkdirAll(filepath.Join(dir, "sha256"), 0o755)
	writeOld(t, filepath.Join(dir, "sha256", ".tmp-abcdef012345-99"), "not yours either")
	before := tree(t, dir)
	return dir, func() {
		t.Helper()
		after := tree(t, dir)
		for k, v := range after {
			if before[k] != v {
				t.Errorf("outside the layout, %s was created or changed: %q (was %q)", k, v, before[k])
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				t.Errorf("outside the layout, %s was deleted", k)
			}
		}
	}
}

// writeOld writes a file two hours old (what the stale-temp cleanup removes).
func writeOld(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(p, old, old)
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// A destination layout whose own directories are symbolic links (blobs,
// blobs/sha256) is refused; nothing is written through them and the stale
// temporary file cleanup deletes nothing there.
func TestLayoutSymlinkedDirsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir, victim string)
	}{
		{"blobs/sha256 of a layout", func(t *testing.T, dir, victim string) {
			writeLayout(t, dir, `{"schemaVersion":2,"manifests":[]}`)
			_ = os.Remove(filepath.Join(dir, "blobs", "sha256"))
			symlink(t, victim, filepath.Join(dir, "blobs", "sha256"))
		}},
		{"blobs of a layout", func(t *testing.T, dir, victim string) {
			writeLayout(t, dir, `{"schemaVersion":2,"manifests":[]}`)
			_ = os.RemoveAll(filepath.Join(dir, "blobs"))
			symlink(t, victim, filepath.Join(dir, "blobs"))
		}},
		{"blobs/sha256 of a bare directory", func(t *testing.T, dir, victim string) {
			_ = os.MkdirAll(filepath.Join(dir, "blobs"), 0o755)
			symlink(t, victim, filepath.Join(dir, "blobs", "sha256"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim, unchanged := outside(t)
			dir := filepath.Join(t.TempDir(), "oci")
			_ = os.MkdirAll(dir, 0o755)
			tc.make(t, dir, victim)
			l, err := NewSet().Open(dir, false, false)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("Open: %v; want a ConfigError naming the symbolic link", err)
			}
			if l != nil { // even if it opened, nothing may land outside
				cfg := []byte("config")
				_ = l.Repo("x.io/a").PutUpload(ctx, "", client.Digest(cfg), int64(len(cfg)), bytes.NewReader(cfg))
				_ = l.Finish()
			}
			unchanged()
		})
	}
}

// The same through an archive's staging directory: a pre-made one (a
// symbolic link, or one without the marker this program writes) is refused
// and nothing in it or behind it is used, changed or deleted; our own
// staging directory with a symbolic link inside is emptied without
// following it.
func TestArchiveStagingNotOursRefused(t *testing.T) {
	// An archive with one image, to append to.
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.tar")
	l, _ := NewSet().Open(file, true, false)
	image(t, l.Repo("x.io/a"), "1", "one")
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	archive := readFile(t, file)
	// A valid layout holding another image, to be passed off as staging.
	evil := filepath.Join(t.TempDir(), "evil")
	le, _ := NewSet().Open(evil, false, false)
	image(t, le.Repo("evil.io/b"), "1", "planted")
	if err := le.Finish(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(t *testing.T, partial, victim string)
		want string
	}{
		{"a layout someone else made", func(t *testing.T, partial, victim string) {
			if err := os.CopyFS(partial, os.DirFS(evil)); err != nil {
				t.Fatal(err)
			}
		}, "no .imagesync-staging marker"},
		{"a directory with other files", func(t *testing.T, partial, victim string) {
			_ = os.MkdirAll(partial, 0o755)
			_ = os.WriteFile(filepath.Join(partial, "thesis.txt"), []byte("years of work"), 0o644)
		}, "no .imagesync-staging marker"},
		{"a regular file", func(t *testing.T, partial, victim string) {
			_ = os.WriteFile(partial, []byte("a file"), 0o644)
		}, "not a directory"},
		{"a symbolic link to a directory", func(t *testing.T, partial, victim string) {
			symlink(t, victim, partial)
		}, "a symbolic link"},
		{"a marker someone else forged, through a link", func(t *testing.T, partial, victim string) {
			forged := t.TempDir()
			_ = os.WriteFile(filepath.Join(forged, stagingMarker), []byte(markerText(file)), 0o644)
			_ = os.WriteFile(filepath.Join(forged, "precious"), []byte("keep me"), 0o644)
			symlink(t, forged, partial)
		}, "a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim, unchanged := outside(t)
			partial := file + ".partial"
			tc.make(t, partial, victim)
			before := tree(t, filepath.Dir(file))
			_, err := NewSet().Open(file, true, false)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing in it was used or deleted") {
				t.Errorf("Open: %v; want a ConfigError saying %q", err, tc.want)
			}
			if after := tree(t, filepath.Dir(file)); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refusing changed the archive's directory:\n%v\nwas\n%v", after, before)
			}
			if readFile(t, file) != archive {
				t.Error("the archive changed")
			}
			unchanged()
			_ = os.RemoveAll(partial)
		})
	}
	// Our own staging directory (marker) with its blobs/sha256 a link:
	// emptied on the first write, the link removed, not followed.
	t.Run("ours, with a link inside", func(t *testing.T) {
		victim, unchanged := outside(t)
		partial := file + ".partial"
		_ = os.MkdirAll(filepath.Join(partial, "blobs"), 0o755)
		_ = os.WriteFile(filepath.Join(partial, stagingMarker), []byte(markerText(file)), 0o644)
		symlink(t, victim, filepath.Join(partial, "blobs", "sha256"))
		l, err := NewSet().Open(file, true, false)
		if err != nil {
			t.Fatal(err)
		}
		image(t, l.Repo("x.io/c"), "1", "three")
		if err := l.Finish(); err != nil {
			t.Fatal(err)
		}
		l, _ = NewSet().Open(file, true, true)
		if n := names(t, l); !slices.Equal(n, []string{"x.io/a:1", "x.io/c:1"}) {
			t.Errorf("names %v", n)
		}
		if _, err := os.Lstat(partial); !errors.Is(err, fs.ErrNotExist) {
			t.Error("the staging directory was left")
		}
		unchanged()
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The stale temporary files a killed run left are removed; nothing else:
// not a link named like one, not a file of another name.
func TestStaleTempCleanupOnlyOurs(t *testing.T) {
	victim, unchanged := outside(t)
	dir := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, dir, `{"schemaVersion":2,"manifests":[]}`)
	blobs := filepath.Join(dir, "blobs", "sha256")
	ours := filepath.Join(blobs, ".tmp-0123456789ab-3141592653")
	writeOld(t, ours, "left by a killed run")
	notOurs := filepath.Join(blobs, ".tmp-notes.txt")
	writeOld(t, notOurs, "a user's file")
	link := filepath.Join(blobs, ".tmp-abcdef012345-1234567890")
	symlink(t, filepath.Join(victim, ".tmp-abcdef012345-1234567890"), link)
	l, err := NewSet().Open(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	image(t, l.Repo("x.io/a"), "1", "one")
	_ = l.Finish()
	if _, err := os.Lstat(ours); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a stale temporary file of a killed run was left")
	}
	for _, p := range []string{notOurs, link} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	unchanged()
}

// No lock file is left after a clean run, and a lock path that is a link
// is never followed (nothing created at its target).
func TestLockFile(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(fmt.Sprint("archive=", archive), func(t *testing.T) {
			parent := t.TempDir()
			p := filepath.Join(parent, "out")
			l, _ := NewSet().Open(p, archive, false)
			image(t, l.Repo("x.io/a"), "1", "one")
			if _, err := os.Lstat(p + ".lock"); err != nil {
				t.Fatalf("no lock while writing: %v", err)
			}
			if err := l.Finish(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(p + ".lock"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the lock file stayed after a clean run: %v", err)
			}
			// A second writer while the first holds the lock.
			s1, s2 := NewSet(), NewSet()
			l1, _ := s1.Open(p, archive, false)
			l2, _ := s2.Open(p, archive, false)
			image(t, l1.Repo("x.io/a"), "2", "two")
			if err := l2.Repo("x.io/a").PutManifest(ctx, "3", client.MediaOCIManifest, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "another imagesync run") {
				t.Errorf("a second writer: %v", err)
			}
			s1.Finish()
			s2.Close()
			if _, err := os.Lstat(p + ".lock"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the lock file stayed: %v", err)
			}

			victim, unchanged := outside(t)
			target := filepath.Join(victim, "created-by-lock")
			symlink(t, target, p+".lock")
			l, _ = NewSet().Open(p, archive, false)
			err := l.Repo("x.io/a").PutManifest(ctx, "4", client.MediaOCIManifest, []byte(`{}`))
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("writing with a linked lock file: %v; want an error naming the link", err)
			}
			if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Error("the lock file's link was followed: its target was created")
			}
			unchanged()
		})
	}
}

// Layout files and a rewritten archive get the umask's mode (0644 and 0755
// with umask 022), as skopeo and oras write them.
func TestLayoutFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "oci")
	l, _ := NewSet().Open(p, false, false)
	image(t, l.Repo("x.io/a"), "1", "one")
	_ = l.Finish()
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		fi, _ := os.Lstat(q)
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = fs.ModeDir | 0o755
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", q, fi.Mode(), want)
		}
		return nil
	})
	file := filepath.Join(dir, "bundle.tar")
	for i := range 2 { // written, then rewritten
		l, _ := NewSet().Open(file, true, false)
		image(t, l.Repo("x.io/a"), fmt.Sprint(i), fmt.Sprint("layer ", i))
		if err := l.Finish(); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(file); fi.Mode() != 0o644 {
			t.Errorf("archive (run %d): mode %v, want 0644", i+1, fi.Mode())
		}
	}
}

// A source layout is read only through regular files, each read bounded:
// an oci-layout file that is 3 GB (sparse) or a link to /dev/zero, a
// manifest that is a FIFO or a link to /dev/zero, a blob linked to
// /dev/zero: each is an error naming the file, at once.
func TestLayoutSourceOnlyRegularFiles(t *testing.T) {
	fresh := func(t *testing.T) (string, *Layout, string) {
		dir := filepath.Join(t.TempDir(), "oci")
		l, _ := NewSet().Open(dir, false, false)
		d := image(t, l.Repo("x.io/a"), "1", "layer")
		_ = l.Finish()
		return dir, l, d
	}
	t.Run("oci-layout sparse 3 GB", func(t *testing.T) {
		dir, _, _ := fresh(t)
		f, _ := os.Create(filepath.Join(dir, LayoutFile))
		if err := f.Truncate(3 << 30); err != nil {
			t.Skip("no sparse files here:", err)
		}
		f.Close()
		_, err := NewSet().Open(dir, false, true)
		if err == nil || !strings.Contains(err.Error(), "oci-layout is larger than") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("oci-layout linked to /dev/zero", func(t *testing.T) {
		dir, _, _ := fresh(t)
		_ = os.Remove(filepath.Join(dir, LayoutFile))
		symlink(t, "/dev/zero", filepath.Join(dir, LayoutFile))
		_, err := NewSet().Open(dir, false, true)
		if err == nil || !strings.Contains(err.Error(), "oci-layout is a symbolic link") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("index.json a FIFO", func(t *testing.T) {
		dir, _, _ := fresh(t)
		_ = os.Remove(filepath.Join(dir, IndexFile))
		if err := syscall.Mkfifo(filepath.Join(dir, IndexFile), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := within(t, func() error { _, err := NewSet().Open(dir, false, true); return err })
		if err == nil || !strings.Contains(err.Error(), "index.json is a FIFO") {
			t.Fatalf("Open: %v", err)
		}
	})
	for _, kind := range []string{"FIFO", "link to /dev/zero"} {
		t.Run("manifest a "+kind, func(t *testing.T) {
			dir, _, d := fresh(t)
			l, _ := NewSet().Open(dir, false, true)
			p, _ := l.blobPath(d)
			_ = os.Remove(p)
			if kind == "FIFO" {
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				symlink(t, "/dev/zero", p)
			}
			_, err := within(t, func() error { _, _, err := l.Repo("x.io/a").GetManifest(ctx, "1"); return err })
			if err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
				t.Fatalf("GetManifest: %v; want an error naming the file", err)
			}
			_, err = within(t, func() error { _, _, err := l.Repo("x.io/a").GetManifest(ctx, d); return err })
			if err == nil {
				t.Fatal("GetManifest by digest read it")
			}
		})
	}
	t.Run("blob linked to /dev/zero", func(t *testing.T) {
		dir, _, _ := fresh(t)
		l, _ := NewSet().Open(dir, false, true)
		layer := client.Digest([]byte("layer"))
		p, _ := l.blobPath(layer)
		_ = os.Remove(p)
		symlink(t, "/dev/zero", p)
		_, err := within(t, func() error {
			rc, _, err := l.Repo("x.io/a").GetBlob(ctx, layer)
			if err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(rc, 1<<20))
				rc.Close()
				return errors.New("opened")
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("GetBlob: %v", err)
		}
	})
}

// within runs f, failing the test if it does not return in 10 s (a FIFO
// opened for reading blocks until a writer comes).
func within(t *testing.T, f func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(10 * time.Second):
		t.Fatal("hung (a FIFO opened, or an endless file read)")
		return 0, nil
	}
}

// An archive with an entry that is no blob (blobs/sha256/README) and a
// sha512 blob its index references can be appended to: the README is not
// carried over, the sha512 blob is.
func TestArchiveCarriesOnlyWhatIndexReferences(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.tar")
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("a sha512 layer")
	h := sha512.Sum512(layer)
	layer512 := "sha512:" + hex.EncodeToString(h[:])
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		client.Digest(cfg) + `","size":` + itoa(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		layer512 + `","size":` + itoa(len(layer)) + `}]}`)
	md := client.Digest(m)
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md + `","size":` + itoa(len(m)) + `,"annotations":{"org.opencontainers.image.ref.name":"x.io/old:1"}}]}`
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644})
		_, _ = tw.Write(b)
	}
	add(LayoutFile, []byte(layoutVersion))
	add(IndexFile, []byte(index))
	add("blobs/sha256/README", []byte("this archive was made by hand"))
	add("blobs/sha256/"+strings.TrimPrefix(client.Digest(cfg), "sha256:"), cfg)
	add("blobs/sha512/"+strings.TrimPrefix(layer512, "sha512:"), layer)
	add("blobs/sha256/"+strings.TrimPrefix(md, "sha256:"), m)
	add("blobs/sha256/"+strings.TrimPrefix(client.Digest([]byte("unreferenced")), "sha256:"), []byte("unreferenced"))
	_ = tw.Close()
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		l, err := NewSet().Open(file, true, false)
		if err != nil {
			t.Fatal(err)
		}
		image(t, l.Repo("x.io/new"), fmt.Sprint(run), fmt.Sprint("new layer ", run))
		if err := l.Finish(); err != nil {
			t.Fatalf("run %d: appending: %v", run+1, err)
		}
		if _, err := os.Lstat(file + ".partial"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("a .partial was left")
		}
	}
	l, err := NewSet().Open(file, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(t, l); !slices.Equal(n, []string{"x.io/new:0", "x.io/new:1", "x.io/old:1"}) {
		t.Fatalf("names %v", n)
	}
	if _, err := l.Repo("x.io/old").HeadManifest(ctx, "1"); err != nil {
		t.Fatalf("the image with a sha512 layer: %v", err)
	}
	rc, _, err := l.Repo("x.io/old").GetBlob(ctx, layer512)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != string(layer) {
		t.Fatalf("sha512 blob: %q", got)
	}
	tr := tar.NewReader(strings.NewReader(readFile(t, file)))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasSuffix(h.Name, "README") || strings.HasSuffix(h.Name, strings.TrimPrefix(client.Digest([]byte("unreferenced")), "sha256:")) {
			t.Errorf("%s was carried over, though the index does not reference it", h.Name)
		}
	}
}
