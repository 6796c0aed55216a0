package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func open(t *testing.T, path string) *Ledger {
	t.Helper()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ledger.jsonl")
	l := open(t, path)
	if err := l.RecordBlobs("r.io/ns/a", []string{d1, d2}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1, Src: "s.io/x/a:v1", SrcDigest: d1}); err != nil {
		t.Fatal(err)
	}
	_ = l.RecordBlobs("r.io/ns/a", []string{d1}) // nothing new: no line
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if got := exportLines(t, path); len(got) != 3 || !strings.HasPrefix(got[0], `{"t":"h","v":1,`) {
		t.Errorf("export: %d lines, want 3 (header, blobs, manifest):\n%s", len(got), strings.Join(got, "\n"))
	}
	l = open(t, path)
	defer l.Close()
	e, ok := l.Manifest("r.io/ns/a:v1")
	if !ok || e.Digest != d1 || e.Src != "s.io/x/a:v1" || e.Time.IsZero() {
		t.Fatalf("manifest entry %+v %v", e, ok)
	}
	if !l.HasBlob("r.io/ns/a", d2) || l.HasBlob("r.io/ns/b", d2) {
		t.Fatal("blob knowledge wrong")
	}
	if got := l.ReposWithBlob("r.io", d1); !slices.Equal(got, []string{"r.io/ns/a"}) {
		t.Fatalf("ReposWithBlob = %v", got)
	}
}

// A JSON-lines ledger killed mid-write: the torn last line is skipped with
// a warning and everything before it migrated; the old file is kept.
// A blob the file already knows, landing again in a later run (RecordBlobs
// does not read the file for it), is written again and stays one fact;
// one that run invalidated is known again.
func TestKnownBlobRecordedAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	if err := l.RecordBlobs("r.io/ns/a", []string{d1, d2}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, path)
	if err := l.RecordBlobs("r.io/ns/a", []string{d1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ro.Stats()
	ro.Close()
	if err != nil || st.BlobFacts != 2 {
		t.Errorf("stats %+v, %v: want 2 blob facts after recording a known one again", st, err)
	}
	l = open(t, path)
	if err := l.Invalidate("r.io/ns/a", ""); err != nil {
		t.Fatal(err)
	}
	if l.HasBlob("r.io/ns/a", d2) {
		t.Error("a blob of an invalidated repository is still known")
	}
	if err := l.RecordBlobs("r.io/ns/a", []string{d2}); err != nil {
		t.Fatal(err)
	}
	if !l.HasBlob("r.io/ns/a", d2) || l.HasBlob("r.io/ns/a", d1) {
		t.Error("after invalidating and recording d2: want d2 known, d1 not")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, path)
	defer l.Close()
	st, err = l.Stats()
	if err != nil || st.BlobFacts != 1 || st.Repositories != 1 {
		t.Errorf("stats %+v, %v: want the one blob fact recorded after the invalidation", st, err)
	}
	if !l.HasBlob("r.io/ns/a", d2) || l.HasBlob("r.io/ns/a", d1) {
		t.Error("reopened: want d2 known, d1 not")
	}
}

func TestTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	content := `{"t":"h","v":1}
{"t":"m","dst":"r.io/ns/a:v1","digest":"` + d1 + `"}
{"t":"m","dst":"r.io/ns/a:v2","dig`
	os.WriteFile(path, []byte(content), 0o600)
	l := open(t, path)
	if w := l.Warnings(); len(w) != 2 || !strings.Contains(w[0], "torn last line 3") || !strings.Contains(w[1], "migrated 2 records") {
		t.Fatalf("warnings %v", w)
	}
	if _, ok := l.Manifest("r.io/ns/a:v1"); !ok {
		t.Fatal("lost the complete record")
	}
	if _, ok := l.Manifest("r.io/ns/a:v2"); ok {
		t.Fatal("the torn record was read")
	}
	_ = l.RecordManifest("r.io/ns/a:v3", Entry{Digest: d2})
	l.Close()
	if b, _ := os.ReadFile(path + ".bak"); string(b) != content {
		t.Fatalf("the JSON-lines file was not kept as %s.bak: %q", path, b)
	}
	l = open(t, path)
	defer l.Close()
	if len(l.Warnings()) != 0 {
		t.Fatalf("warnings after the migration: %v", l.Warnings())
	}
	if e, ok := l.Manifest("r.io/ns/a:v3"); !ok || e.Digest != d2 {
		t.Fatal("record after the migration lost")
	}
}

func TestUnreadableMiddleLineAndMissingNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	content := `{"t":"h","v":1}
garbage
{"t":"m","dst":"r.io/a/b:1","digest":"` + d1 + `"}`
	os.WriteFile(path, []byte(content), 0o600)
	l := open(t, path)
	if w := l.Warnings(); len(w) != 2 || !strings.Contains(w[0], ":2: ignoring") {
		t.Fatalf("warnings %v", w)
	}
	if _, ok := l.Manifest("r.io/a/b:1"); !ok {
		t.Fatal("complete last record without newline was dropped")
	}
	_ = l.RecordManifest("r.io/a/b:2", Entry{Digest: d2})
	l.Close()
	l = open(t, path)
	defer l.Close()
	if _, ok := l.Manifest("r.io/a/b:2"); !ok {
		t.Fatal("record after the migration lost")
	}
}

// Two runs share one ledger (issue #23): each records what it did, sees
// the other's batches once written, and a reader opened meanwhile reads
// both.
func TestTwoRunsShareTheLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	a, b := open(t, path), open(t, path)
	if err := a.RecordManifest("r.io/ns/a:1", Entry{Digest: d1}); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordManifest("r.io/ns/b:1", Entry{Digest: d2}); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordBlobs("r.io/ns/b", []string{d1}); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(false); err != nil {
		t.Fatal(err)
	}
	if e, ok := b.Manifest("r.io/ns/a:1"); !ok || e.Digest != d1 {
		t.Errorf("b does not see a's written batch: %+v %v", e, ok)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatalf("a reader beside two writers: %v", err)
	}
	if err := errors.Join(b.Close(), a.Close()); err != nil {
		t.Fatal(err)
	}
	if e, ok := ro.Manifest("r.io/ns/b:1"); !ok || e.Digest != d2 || !ro.HasBlob("r.io/ns/b", d1) {
		t.Errorf("the reader does not see b's facts: %+v %v", e, ok)
	}
	ro.Close()
	l := open(t, path)
	defer l.Close()
	for dst, want := range map[string]string{"r.io/ns/a:1": d1, "r.io/ns/b:1": d2} {
		if e, ok := l.Manifest(dst); !ok || e.Digest != want {
			t.Errorf("%s: %+v %v, want %s", dst, e, ok, want)
		}
	}
}

func TestInvalidateAndRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := open(t, path)
	_ = l.RecordBlobs("r.io/ns/a", []string{d1})
	_ = l.RecordBlobs("r.io/ns/b", []string{d1})
	_ = l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1})
	_ = l.RecordManifest("r.io/ns/a@"+d2, Entry{Digest: d2})
	_ = l.RecordManifest("r.io/ns/ab:v1", Entry{Digest: d1})
	_ = l.Invalidate("r.io/ns/a", "r.io/ns/a:v1")
	check := func(l *Ledger) {
		t.Helper()
		if _, ok := l.Manifest("r.io/ns/a:v1"); ok {
			t.Error("manifest of the invalidated repository kept")
		}
		if _, ok := l.Manifest("r.io/ns/a@" + d2); ok {
			t.Error("digest manifest of the invalidated repository kept")
		}
		if _, ok := l.Manifest("r.io/ns/ab:v1"); !ok {
			t.Error("a repository with the same prefix was invalidated too")
		}
		if l.HasBlob("r.io/ns/a", d1) || !l.HasBlob("r.io/ns/b", d1) {
			t.Error("blob invalidation wrong")
		}
		if !l.NeedsRepair("r.io/ns/a:v1") {
			t.Error("repair mark lost")
		}
	}
	check(l)
	l.Close()
	l = open(t, path)
	check(l)
	// an export, migrated back, keeps the same facts
	var buf strings.Builder
	if err := l.Export(&buf); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(t.TempDir(), "export.jsonl")
	os.WriteFile(exported, []byte(buf.String()), 0o600)
	l.Close()
	l = open(t, exported)
	check(l)
	l.Close()
	l = open(t, path)
	check(l)
	_ = l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1})
	if l.NeedsRepair("r.io/ns/a:v1") {
		t.Error("a new record must clear the repair mark")
	}
	l.Close()
}

// A tag moving back and forth many times keeps one entry: the file does
// not grow with the number of writes.
func TestRewritesDoNotGrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	for range 3000 {
		_ = l.RecordManifest("r.io/ns/a:latest", Entry{Digest: d1})
		_ = l.RecordManifest("r.io/ns/a:latest", Entry{Digest: d2})
	}
	l.Close()
	if fi, _ := os.Stat(path); fi.Size() > 1<<20 {
		t.Fatalf("%d bytes for one entry", fi.Size())
	}
	l = open(t, path)
	defer l.Close()
	if e, _ := l.Manifest("r.io/ns/a:latest"); e.Digest != d2 {
		t.Fatalf("lost the latest digest: %v", e.Digest)
	}
}

func TestNewerFormatRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	os.WriteFile(path, []byte(`{"t":"h","v":99}`+"\n"), 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer imagesync") {
		t.Fatalf("got %v", err)
	}
}

func TestNilLedger(t *testing.T) {
	var l *Ledger
	if _, ok := l.Manifest("x"); ok || l.HasBlob("a", "b") || l.RecordManifest("x", Entry{}) != nil || l.Close() != nil {
		t.Fatal("nil ledger must be inert")
	}
}

// A symlink to a ledger in use is the same ledger, and writes through it
// land in the real file (compaction does not replace the link).
func TestLockFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "ledger.jsonl")
	l, err := Open(real)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
	linkedDir := filepath.Join(dir, "alias")
	if err := os.Symlink(filepath.Join(dir, "real"), linkedDir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, filepath.Join(linkedDir, "ledger.jsonl")} {
		o, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if o.Path() != l.Path() {
			t.Errorf("%s opens %s, want %s", p, o.Path(), l.Path())
		}
		o.Close()
	}
	l.Close()
	l2, err := Open(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.RecordManifest("r/a:1", Entry{Digest: "sha256:" + strings.Repeat("a", 64)}); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	if data, _ := os.ReadFile(real); !strings.Contains(string(data), "r/a:1") {
		t.Fatal("the record did not reach the real file")
	}
}

// A record holding a secret the run's redactor knows is never written.
func TestGuardWithholdsSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Guard(func(s string) string { return strings.ReplaceAll(s, "hunter22", "***") })
	if err := l.RecordManifest("r.io/hunter22/app:1", Entry{Digest: d1}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordManifest("r.io/team/app:1", Entry{Digest: d2}); err != nil {
		t.Fatal(err)
	}
	if l.Withheld() != 1 {
		t.Errorf("withheld %d records, want 1", l.Withheld())
	}
	l.Close()
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "hunter22") || strings.Contains(string(data), "***") || !strings.Contains(string(data), "r.io/team/app:1") {
		t.Fatalf("ledger:\n%s", data)
	}
}

// A run interrupted before it opens the ledger (its wait already
// cancelled) still opens a ledger nobody holds, and records at Close.
func TestCancelledWaitOpensAFreeLedger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, WaitForReaders(ctx, time.Minute, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RecordManifest("r.io/ns/a:1", Entry{Digest: d1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := open(t, path)
	defer r.Close()
	if e, ok := r.Manifest("r.io/ns/a:1"); !ok || e.Digest != d1 {
		t.Errorf("recorded %+v %v", e, ok)
	}
}
