package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// snapshot is every file of a folder with its bytes and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = fmt.Sprintf("%s %v %v", b, fi.ModTime().UnixNano(), fi.Mode())
	}
	return out
}

// plan's ledger: a JSON-lines ledger that Open would compact and whose
// torn last line it would cut off is read as it is, and nothing in its
// folder changes (no lock file, no header, no repair, no compaction).
func TestReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	var b strings.Builder
	b.WriteString(`{"t":"h","v":1}` + "\n")
	for i := range 1500 { // the same tag moving back and forth: worth compacting
		fmt.Fprintf(&b, `{"t":"m","dst":"r.io/ns/a:latest","digest":"%s"}`+"\n", []string{d1, d2}[i%2])
	}
	b.WriteString(`{"t":"b","repo":"r.io/ns/a","d":["` + d1 + `"]}` + "\n")
	b.WriteString(`{"t":"m","dst":"r.io/ns/a:v2","dig`) // a write in progress
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	l, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := l.Manifest("r.io/ns/a:latest"); !ok || e.Digest != d2 {
		t.Errorf("Manifest = %+v, %v; want %s", e, ok, d2)
	}
	if !l.HasBlob("r.io/ns/a", d1) {
		t.Error("blob record not read")
	}
	if len(l.Warnings()) != 1 || !strings.Contains(l.Warnings()[0], "torn last line") {
		t.Errorf("warnings %v", l.Warnings())
	}
	for name, err := range map[string]error{
		"RecordManifest": l.RecordManifest("r.io/ns/a:v3", Entry{Digest: d1}),
		"RecordBlobs":    l.RecordBlobs("r.io/ns/b", []string{d2}),
		"Invalidate":     l.Invalidate("r.io/ns/a", ""),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only ledger: %v, want ErrReadOnly", name, err)
		}
	}
	if _, ok := l.Manifest("r.io/ns/a:v3"); ok || l.HasBlob("r.io/ns/b", d2) {
		t.Error("a refused record was remembered")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Fatalf("files %d before, %d after: %v", len(before), len(after), after)
	}
	for name, s := range before {
		if after[name] != s {
			t.Errorf("%s changed", name)
		}
	}
}

// A ledger that does not exist yet knows nothing, and is not created.
func TestReadOnlyMissingLedger(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "imagesync")
	l, err := OpenReadOnly(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Manifest("r.io/ns/a:v1"); ok {
		t.Error("an empty ledger knows a manifest")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s: %v", filepath.Dir(dir), err)
	}
}

// A database opened read-only is read in place (no copy anywhere), each
// lookup under a shared lock for that lookup only: a run writing the
// ledger does not keep readers out, nor readers a run. A batch that finds
// the database held (a long ledger export) waits for it at Close as
// WaitForReaders says, gives up when that wait is cancelled, and during
// the run keeps its facts for the next batch.
func TestReadOnlyDatabaseInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	w := open(t, path)
	if err := w.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1}); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenReadOnly(path); err != nil {
		t.Errorf("read-only open of a ledger a run writes: %v", err)
	} else {
		r.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // no private copy may go there
	before := snapshot(t, filepath.Dir(path))
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := ro.Manifest("r.io/ns/a:v1"); !ok || e.Digest != d1 {
		t.Errorf("read-only Manifest = %+v, %v; want %s", e, ok, d1)
	}
	if !errors.Is(ro.RecordManifest("r.io/ns/a:v3", Entry{Digest: d1}), ErrReadOnly) {
		t.Error("a read-only database ledger accepted a record")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("reading the ledger copied it: %v", left)
	}
	w = open(t, path) // beside the reader
	if err := w.RecordManifest("r.io/ns/a:v2", Entry{Digest: d2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if e, ok := ro.Manifest("r.io/ns/a:v2"); !ok || e.Digest != d2 {
		t.Errorf("the reader does not see the writer's batch: %+v %v", e, ok)
	}
	ro.Close()

	// A long read in progress (as ledger export holds it) ...
	hold := func() *bolt.DB {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	held := hold()
	// ... keeps a batch during the run for later ...
	w = open(t, path)
	_ = w.RecordManifest("r.io/ns/a:v4", Entry{Digest: d1})
	if err := w.flush(false); err != nil {
		t.Fatalf("a batch beside a long read: %v, want it kept for later", err)
	}
	if e, ok := w.Manifest("r.io/ns/a:v4"); !ok || e.Digest != d1 {
		t.Error("a batch put back is forgotten")
	}
	// ... makes Close give up when its wait is cancelled ...
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.opts = openOptions{ctx: ctx, maxWait: time.Minute}
	if err := w.Close(); !errors.Is(err, ErrLocked) {
		t.Errorf("a cancelled wait: %v, want ErrLocked", err)
	}
	// ... or wait for the read to finish.
	noticed := make(chan struct{})
	closed := make(chan error)
	w = open(t, path)
	w.opts = openOptions{ctx: context.Background(), maxWait: time.Minute, notice: func() { close(noticed) }}
	_ = w.RecordManifest("r.io/ns/a:v5", Entry{Digest: d2})
	go func() { closed <- w.Close() }()
	<-noticed
	select {
	case <-closed:
		t.Fatal("the writer wrote while a reader held the database")
	case <-time.After(300 * time.Millisecond):
	}
	held.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	ro, err = OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := ro.Manifest("r.io/ns/a:v5"); !ok || e.Digest != d2 {
		t.Error("the batch that waited was not written")
	}
	ro.Close()
	after := snapshot(t, filepath.Dir(path))
	for name := range after {
		if _, ok := before[name]; !ok && name != "ledger.db.lock" {
			t.Errorf("file %s appeared beside the ledger", name)
		}
	}
}
