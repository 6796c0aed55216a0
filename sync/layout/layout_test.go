package layout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/registry/client"
)

var ctx = context.Background()

// image writes a one-layer image into r under ref and returns its manifest digest.
func image(t *testing.T, r *Repo, ref, layer string) string {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{cfg, []byte(layer)} {
		if err := r.PutUpload(ctx, "", client.Digest(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		client.Digest(cfg) + `","size":` + itoa(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		client.Digest([]byte(layer)) + `","size":` + itoa(len(layer)) + `}]}`)
	if ref == "@" {
		ref += client.Digest(m)
	}
	if err := r.PutManifest(ctx, ref, client.MediaOCIManifest, m); err != nil {
		t.Fatal(err)
	}
	return client.Digest(m)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func names(t *testing.T, l *Layout) []string {
	t.Helper()
	n, unnamed := l.Names()
	if len(unnamed) > 0 {
		t.Fatalf("unnamed entries %v", unnamed)
	}
	slices.Sort(n)
	return n
}

func TestDirLayoutWriteRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	l, err := NewSet().Open(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("opening a layout to write created it before any write")
	}
	a := l.Repo("x.io/lib/a")
	d1 := image(t, a, "1", "layer one")
	d2 := image(t, a, "@", "layer two") // "@digest": stored and named by digest
	child := image(t, l.Repo("x.io/lib/b"), client.Digest([]byte("nothing")), "layer three")
	_ = child

	l2, err := NewSet().Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x.io/lib/a:1", "x.io/lib/a@" + d2}
	if err := a.PutManifest(ctx, "@"+d1, client.MediaOCIManifest, []byte("{}")); err == nil {
		t.Fatal("a manifest named by another digest was accepted")
	}
	if got := names(t, l2); !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v (a manifest put by digest is stored, not named)", got, want)
	}
	r := l2.Repo("x.io/lib/a")
	d, err := r.HeadManifest(ctx, "1")
	if err != nil || d.Digest != d1 || d.MediaType != client.MediaOCIManifest {
		t.Fatalf("HEAD 1: %+v %v", d, err)
	}
	if _, err := r.HeadManifest(ctx, "2"); !client.IsNotFound(err) {
		t.Fatalf("HEAD of a missing tag: %v, want not found", err)
	}
	if d, err := r.HeadManifest(ctx, d2); err != nil || d.Digest != d2 {
		t.Fatalf("HEAD by digest: %+v %v", d, err)
	}
	if tags, _, _ := r.Tags(ctx); !slices.Equal(tags, []string{"1"}) {
		t.Fatalf("tags %v", tags)
	}
	rc, size, err := r.GetBlob(ctx, client.Digest([]byte("layer one")))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := readAll(rc)
	if string(b) != "layer one" || size != int64(len(b)) {
		t.Fatalf("blob %q size %d", b, size)
	}
	if ok, _ := r.HeadBlob(ctx, client.Digest([]byte("layer three"))); !ok {
		t.Fatal("blobs are shared by every repository of a layout")
	}
	if _, mounted, _ := r.StartUpload(ctx, client.Digest([]byte("layer three")), ""); !mounted {
		t.Fatal("a blob the layout holds counts as mounted")
	}
	assertNoTemps(t, dir)
}

func readAll(rc interface {
	Read([]byte) (int, error)
	Close() error
}) ([]byte, error) {
	defer rc.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(rc)
	return buf.Bytes(), err
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, "blobs", "sha256")} {
		m, _ := filepath.Glob(filepath.Join(d, tempPrefix+"*"))
		if len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}
}

func TestWrongBytesNeverLand(t *testing.T) {
	dir := t.TempDir()
	l, _ := NewSet().Open(dir, false, false)
	r := l.Repo("x.io/a")
	want := client.Digest([]byte("the right bytes"))
	for _, tc := range []struct {
		name string
		body string
		size int64
	}{
		{"other bytes", "the wrong bytes", 15},
		{"short", "the right", 15},
		{"size differs", "the right bytes", 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.PutUpload(ctx, "", want, tc.size, strings.NewReader(tc.body))
			if err == nil || !client.IsPermanent(err) {
				t.Fatalf("PutUpload: %v, want a permanent error", err)
			}
			if ok, _ := r.HeadBlob(ctx, want); ok {
				t.Fatal("a blob with the wrong bytes landed under the digest")
			}
			assertNoTemps(t, dir)
		})
	}
	// A corrupt manifest blob is refused on read, naming the file.
	m := []byte(`{"schemaVersion":2}`)
	if err := r.PutManifest(ctx, "t", client.MediaOCIManifest, m); err != nil {
		t.Fatal(err)
	}
	p, _ := l.blobPath(client.Digest(m))
	_ = os.WriteFile(p, []byte(`{"schemaVersion":3}`), 0o644)
	if _, _, err := r.GetManifest(ctx, "t"); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt manifest: %v", err)
	}
}

func TestIndexKeepsWhatItDoesNotOwn(t *testing.T) {
	dir := t.TempDir()
	writeLayout(t, dir, `{"schemaVersion":2,"annotations":{"keep":"me"},"manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("b", 64)+`","size":3,"platform":{"os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest","other":"x"}}]}`)
	l, err := NewSet().Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	image(t, l.Repo("x.io/a"), "1", "l")
	b, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	for _, s := range []string{`"keep":"me"`, `"platform":{"os":"linux"}`, `"other":"x"`, `"org.opencontainers.image.ref.name":"x.io/a:1"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("index.json lost %s:\n%s", s, b)
		}
	}
	// A name written again points at the new image, in place.
	d := image(t, l.Repo(""), "latest", "new")
	n, _ := l.Names()
	if !slices.Equal(n, []string{"latest", "x.io/a:1"}) {
		t.Errorf("names %v", n)
	}
	if got, _ := l.Repo("").HeadManifest(ctx, "latest"); got.Digest != d {
		t.Errorf("latest is %s, want %s", got.Digest, d)
	}
}

func writeLayout(t *testing.T, dir, index string) {
	t.Helper()
	_ = os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, LayoutFile), []byte(layoutVersion), 0o644)
	_ = os.WriteFile(filepath.Join(dir, IndexFile), []byte(index), 0o644)
}

func TestArchive(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.tar")
	l, err := NewSet().Open(file, true, false)
	if err != nil {
		t.Fatal(err)
	}
	d1 := image(t, l.Repo("x.io/a"), "1", "one")
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the archive exists before the run finished")
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("staging directory left")
	}
	st1, _ := os.Stat(file)

	// Nothing new: the archive is left as it is.
	l, err = NewSet().Open(file, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := l.Repo("x.io/a").HeadManifest(ctx, "1"); err != nil || d.Digest != d1 {
		t.Fatalf("read back: %+v %v", d, err)
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(file); !st.ModTime().Equal(st1.ModTime()) || st.Size() != st1.Size() {
		t.Fatal("an archive nothing was added to was rewritten")
	}

	// A run killed after writing: the next one resumes from the staging
	// directory and keeps the old content.
	image(t, l.Repo("x.io/b"), "2", "two")
	l.close()
	l, err = NewSet().Open(file, true, true)
	if err != nil {
		t.Fatal(err)
	}
	image(t, l.Repo("x.io/c"), "3", "three")
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	l, _ = NewSet().Open(file, true, true)
	if got := names(t, l); !slices.Equal(got, []string{"x.io/a:1", "x.io/b:2", "x.io/c:3"}) {
		t.Fatalf("names %v", got)
	}
	rc, _, err := l.Repo("x.io/a").GetBlob(ctx, client.Digest([]byte("one")))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := readAll(rc); string(b) != "one" {
		t.Fatalf("blob from the archive: %q", b)
	}
	// Every blob once, in a fixed order.
	f, _ := os.Open(file)
	defer f.Close()
	tr := tar.NewReader(f)
	var entries []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		entries = append(entries, h.Name)
	}
	if len(entries) != 2+2+7 || entries[2] != LayoutFile || entries[3] != IndexFile {
		t.Fatalf("archive entries %v", entries)
	}
}

// Archives made by other tools: "./" prefixes, index.json after the blobs.
func TestArchiveFromElsewhere(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	blob := []byte("hello")
	add := func(name string, b []byte) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(b)), Mode: 0o644, Typeflag: tar.TypeReg})
		_, _ = tw.Write(b)
	}
	add("./blobs/sha256/"+strings.TrimPrefix(client.Digest(blob), "sha256:"), blob)
	add("./oci-layout", []byte(layoutVersion))
	add("./index.json", []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+client.Digest(blob)+`","size":5,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`))
	_ = tw.Close()
	file := filepath.Join(t.TempDir(), "x.tar")
	_ = os.WriteFile(file, buf.Bytes(), 0o644)
	l, err := NewSet().Open(file, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(t, l); !slices.Equal(n, []string{"v1"}) {
		t.Fatalf("names %v", n)
	}
	rc, size, err := l.Repo("").GetBlob(ctx, client.Digest(blob))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := readAll(rc); string(b) != "hello" || size != 5 {
		t.Fatalf("blob %q", b)
	}
}

func TestOpenRefusesWhatIsNotALayout(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files map[string]string) string {
		d := filepath.Join(root, name)
		_ = os.MkdirAll(d, 0o755)
		for f, c := range files {
			_ = os.WriteFile(filepath.Join(d, f), []byte(c), 0o644)
		}
		return d
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("x"))
	_ = zw.Close()
	gzFile := filepath.Join(root, "b.tar.gz")
	_ = os.WriteFile(gzFile, gz.Bytes(), 0o644)
	for _, tc := range []struct {
		name, path string
		archive    bool
		want       string
	}{
		{"other files", mk("other", map[string]string{"README": "x"}), false, "not an OCI image layout (no oci-layout file)"},
		{"no index", mk("noindex", map[string]string{LayoutFile: layoutVersion}), false, "index.json is missing"},
		{"bad version", mk("v2", map[string]string{LayoutFile: `{"imageLayoutVersion":"2.0.0"}`, IndexFile: "{}"}), false, "unsupported image layout version"},
		{"bad index", mk("badindex", map[string]string{LayoutFile: layoutVersion, IndexFile: "[1]"}), false, "index.json: not JSON"},
		{"entry without digest", mk("nodigest", map[string]string{LayoutFile: layoutVersion, IndexFile: `{"manifests":[{}]}`}), false, "manifests[0]: no digest"},
		{"compressed archive", gzFile, true, "compressed archive"},
		{"missing source", filepath.Join(root, "nope"), false, "no such OCI image layout"},
		{"a file as a directory", gzFile, false, "is a file: write oci-archive:"},
		{"a directory as an archive", mk("adir", nil), true, "is a directory: write oci:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet().Open(tc.path, tc.archive, true)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), tc.path) {
				t.Fatalf("Open: %v; want a ConfigError starting with the path and saying %q", err, tc.want)
			}
		})
	}
}

// A staging directory (of this program: its marker) killed before it
// became a layout is replaced on the first write, and left alone by a run
// that only reads.
func TestArchiveBrokenStaging(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.tar")
	_ = os.MkdirAll(file+".partial/blobs", 0o755)
	_ = os.WriteFile(file+".partial/junk", []byte("x"), 0o644)
	_ = os.WriteFile(file+".partial/"+stagingMarker, []byte(markerText(file)), 0o644)
	l, err := NewSet().Open(file, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file + ".partial/junk"); err != nil {
		t.Fatal("opening removed the staging directory before any write")
	}
	image(t, l.Repo("x.io/a"), "1", "one")
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	l, err = NewSet().Open(file, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(t, l); !slices.Equal(n, []string{"x.io/a:1"}) {
		t.Fatalf("names %v", n)
	}
}

// A named image whose blob or manifest was lost or damaged is not there
// (HEAD says why), and writing it again repairs it.
func TestIncompleteImageIsMissing(t *testing.T) {
	dir := t.TempDir()
	l, _ := NewSet().Open(dir, false, false)
	r := l.Repo("x.io/a")
	d := image(t, r, "1", "layer")
	layer, _ := l.blobPath(client.Digest([]byte("layer")))
	manifest, _ := l.blobPath(d)
	for _, tc := range []struct {
		name   string
		damage func()
		why    string
	}{
		{"blob deleted", func() { os.Remove(layer) }, "blob " + client.Digest([]byte("layer")) + " is missing"},
		{"manifest damaged", func() { _ = os.WriteFile(manifest, []byte("{}"), 0o644) }, "manifest " + d + ": " + manifest + ": corrupt"},
		{"manifest deleted", func() { os.Remove(manifest) }, "manifest " + d + " is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage()
			_, err := r.HeadManifest(ctx, "1")
			if !client.IsNotFound(err) || !strings.Contains(err.Error(), "incomplete: "+tc.why) {
				t.Fatalf("HEAD: %v; want not found, incomplete: %s", err, tc.why)
			}
			if got := image(t, r, "1", "layer"); got != d {
				t.Fatal("digest changed")
			}
			if _, err := r.HeadManifest(ctx, "1"); err != nil {
				t.Fatalf("after writing it again: %v", err)
			}
		})
	}
}

// Two runs never write one layout at once.
func TestOneWriterPerLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	a, _ := NewSet().Open(dir, false, false)
	image(t, a.Repo("x.io/a"), "1", "one")
	b, _ := NewSet().Open(dir, false, false)
	err := b.Repo("x.io/b").PutManifest(ctx, "2", client.MediaOCIManifest, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "being written by another imagesync run") {
		t.Fatalf("second writer: %v", err)
	}
	a.close()
	if err := b.Repo("x.io/b").PutManifest(ctx, "2", client.MediaOCIManifest, []byte("{}")); err != nil {
		t.Fatalf("after the first run ended: %v", err)
	}
	b.close()
}

// A run killed while creating a layout (before oci-layout was written)
// leaves a directory the next run takes over.
func TestKilledWhileCreating(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644)
	l, err := NewSet().Open(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	image(t, l.Repo("x.io/a"), "1", "one")
	l2, err := NewSet().Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := names(t, l2); !slices.Equal(n, []string{"x.io/a:1"}) {
		t.Fatalf("names %v", n)
	}
}
