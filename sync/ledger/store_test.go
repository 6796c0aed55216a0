package ledger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exportLines opens the ledger at path read-only and returns its export.
func exportLines(t *testing.T, path string) []string {
	t.Helper()
	l, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var b strings.Builder
	if err := l.Export(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func digestN(i int) string { return fmt.Sprintf("sha256:%064x", i) }

// The export is the JSON-lines format, sorted, and reads back to the same
// facts; stats count them.
func TestExportAndStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	_ = l.RecordBlobs("r.io/ns/b", []string{d2, d1})
	_ = l.RecordBlobs("r.io/ns/a", []string{d1})
	_ = l.RecordBlobs("q.io/x/y", []string{"sha512:abc"})
	_ = l.RecordManifest("r.io/ns/b:v1", Entry{Digest: d2, Src: "s.io/x/b:v1", SrcDigest: d2, Filter: "linux/amd64"})
	_ = l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1, Src: "s.io/x/a:v1", SrcDigest: d1})
	_ = l.Invalidate("r.io/ns/c", "r.io/ns/c:v9")
	st, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Path: path, Format: "database", Manifests: 2, Repositories: 3, BlobFacts: 4, Registries: 2, Repairs: 1}
	st.FileBytes, st.Created = 0, ""
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	l.Close()

	lines := exportLines(t, path)
	var recs []record
	for _, line := range lines {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	kinds := ""
	for _, r := range recs {
		kinds += r.T
	}
	if kinds != "hxbbbmm" {
		t.Fatalf("export kinds %q, want hxbbbmm:\n%s", kinds, strings.Join(lines, "\n"))
	}
	if recs[1].Ref != "r.io/ns/c:v9" || recs[2].Repo != "q.io/x/y" || recs[3].Repo != "r.io/ns/a" ||
		!slices.Equal(recs[4].Digests, []string{d1, d2}) || recs[5].Dst != "r.io/ns/a:v1" ||
		recs[6].Filter != "linux/amd64" || recs[6].Src != "s.io/x/b:v1" || recs[6].Time == "" {
		t.Errorf("export:\n%s", strings.Join(lines, "\n"))
	}

	// The export, given as a ledger, migrates to the same facts.
	back := filepath.Join(t.TempDir(), "back.jsonl")
	os.WriteFile(back, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	if got := exportLines(t, back); !slices.Equal(got[1:], lines[1:]) { // read-only: in memory
		t.Errorf("read-only JSON lines export:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
	l2 := open(t, back)
	l2.Close()
	if got := exportLines(t, back); !slices.Equal(got[1:], lines[1:]) {
		t.Errorf("export after the round trip:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
}

// Lookups see the facts of every layer: pending, flushed and invalidated.
func TestLayersAndStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	defer l.Close()
	_ = l.RecordBlobs("r.io/ns/a", []string{d1})
	_ = l.RecordBlobs("r.io/ns/b", []string{d1})
	_ = l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1, Src: "s.io/x/a:v1"})
	_ = l.RecordManifest("r.io:5000/ns/a:v1", Entry{Digest: d1, Src: "s.io/x/a:v2"})
	if err := l.flush(false); err != nil {
		t.Fatal(err)
	}
	if got := l.ReposWithBlob("r.io", d1); !slices.Equal(got, []string{"r.io/ns/a", "r.io/ns/b"}) {
		t.Fatalf("ReposWithBlob %v", got)
	}
	_ = l.Invalidate("r.io/ns/a", "") // pending, on top of the stored facts
	if l.HasBlob("r.io/ns/a", d1) || !l.HasBlob("r.io/ns/b", d1) {
		t.Fatal("pending invalidation not seen over the store")
	}
	if _, ok := l.Manifest("r.io/ns/a:v1"); ok {
		t.Fatal("pending invalidation not seen over a stored manifest")
	}
	if got := l.ReposWithBlob("r.io", d1); !slices.Equal(got, []string{"r.io/ns/b"}) {
		t.Fatalf("ReposWithBlob after the invalidation %v", got)
	}
	_ = l.RecordBlobs("r.io/ns/a", []string{d2}) // after the invalidation
	if !l.HasBlob("r.io/ns/a", d2) || l.HasBlob("r.io/ns/a", d1) {
		t.Fatal("a fact after the invalidation is lost, or one before it kept")
	}
	if got := l.SourceTags("s.io/x/a"); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("SourceTags %v", got)
	}
	if err := l.flush(false); err != nil {
		t.Fatal(err)
	}
	if l.HasBlob("r.io/ns/a", d1) || !l.HasBlob("r.io/ns/a", d2) || !l.HasBlob("r.io/ns/b", d1) {
		t.Fatal("the committed invalidation differs from the pending one")
	}
	if _, ok := l.Manifest("r.io:5000/ns/a:v1"); !ok {
		t.Fatal("invalidating r.io/ns/a dropped r.io:5000/ns/a")
	}
	if got := l.SourceTags("s.io/x/a"); !slices.Equal(got, []string{"v2"}) {
		t.Fatalf("SourceTags after the commit %v", got)
	}
	// A moved source: the old tag is no longer reported.
	_ = l.RecordManifest("r.io:5000/ns/a:v1", Entry{Digest: d2, Src: "s.io/x/a:v3"})
	_ = l.flush(false)
	if got := l.SourceTags("s.io/x/a"); !slices.Equal(got, []string{"v3"}) {
		t.Fatalf("SourceTags after a move %v", got)
	}
}

// plan's ledger: nothing is created or written, a JSON-lines ledger is read
// without being migrated, a database is shared with other readers.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none", "ledger.db")
	l, err := OpenReadOnly(missing)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Manifest("r.io/ns/a:v1"); ok {
		t.Fatal("a missing ledger knows something")
	}
	if err := l.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("RecordManifest on a read-only ledger: %v", err)
	}
	l.Close()
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatal("a read-only open created something")
	}

	jsonl := filepath.Join(dir, "old.jsonl")
	content := `{"t":"h","v":1}` + "\n" + `{"t":"m","dst":"r.io/ns/a:v1","digest":"` + d1 + `"}` + "\n" + `{"t":"b","repo":"r.io/ns/a","d":["` + d2 + `"]}` + "\n" + `{"t":"m","ds`
	os.WriteFile(jsonl, []byte(content), 0o600)
	l, err = OpenReadOnly(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := l.Manifest("r.io/ns/a:v1"); !ok || e.Digest != d1 || !l.HasBlob("r.io/ns/a", d2) || len(l.Warnings()) != 1 {
		t.Fatalf("read-only JSON lines: %v %v, warnings %v", e, ok, l.Warnings())
	}
	l.Close()
	if b, _ := os.ReadFile(jsonl); string(b) != content {
		t.Fatal("a read-only open changed the JSON-lines ledger")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 { // "old.jsonl" only (and not "none")
		t.Fatalf("files written: %v", entries)
	}

	db := filepath.Join(dir, "ledger.db")
	w := open(t, db)
	_ = w.RecordManifest("r.io/ns/a:v1", Entry{Digest: d1})
	if r, err := OpenReadOnly(db); err != nil {
		t.Fatalf("read-only open while a run writes: %v", err)
	} else {
		r.Close()
	}
	w.Close()
	st, _ := os.Stat(db)
	r1, err := OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenReadOnly(db)
	if err != nil {
		t.Fatalf("two readers: %v", err)
	}
	if e, ok := r2.Manifest("r.io/ns/a:v1"); !ok || e.Digest != d1 {
		t.Fatal("read-only database lookup")
	}
	r1.Close()
	r2.Close()
	if st2, _ := os.Stat(db); !st2.ModTime().Equal(st.ModTime()) || st2.Size() != st.Size() {
		t.Fatal("a read-only open wrote to the database")
	}
}

// The default ledger.db takes over the ledger.jsonl older versions kept
// beside it.
func TestMigratesLegacyDefault(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "ledger.jsonl")
	os.WriteFile(legacy, []byte(`{"t":"h","v":1}`+"\n"+`{"t":"m","dst":"r.io/ns/a:v1","digest":"`+d1+`"}`+"\n"), 0o600)
	l := open(t, filepath.Join(dir, "ledger.db"))
	if _, ok := l.Manifest("r.io/ns/a:v1"); !ok {
		t.Fatal("legacy ledger not migrated")
	}
	l.Close()
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Error("the legacy file is still in place (it would be migrated again)")
	}
	if _, err := os.Stat(legacy + ".bak"); err != nil {
		t.Errorf("no backup: %v", err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(filepath.Join(dir, "ledger.db")); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
}

func TestNotALedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	os.WriteFile(path, []byte("\x7fELF this is a binary"), 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "not an imagesync ledger") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "\x7fELF this is a binary" {
		t.Fatal("the file was changed")
	}
}

// A process killed (SIGKILL) while it writes leaves a ledger that opens,
// with every fact of the batches committed before the kill.
func TestKilledMidWrite(t *testing.T) {
	if os.Getenv("LEDGER_TEST_WRITER") != "" {
		writeForever(os.Getenv("LEDGER_TEST_WRITER"))
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := filepath.Join(t.TempDir(), "ledger.db")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledMidWrite$")
	cmd.Env = append(os.Environ(), "LEDGER_TEST_WRITER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	committed := 0
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
			if committed >= 3000 {
				break
			}
		}
	}
	time.Sleep(20 * time.Millisecond) // in the middle of later batches
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if committed < 3000 {
		t.Fatalf("the writer committed only %d facts", committed)
	}
	l := open(t, path)
	defer l.Close()
	for i := range committed {
		if !l.HasBlob("r.io/ns/a", digestN(i)) {
			t.Fatalf("fact %d of %d committed before the kill is lost", i, committed)
		}
	}
	if err := l.RecordBlobs("r.io/ns/a", []string{d1}); err != nil {
		t.Fatal(err)
	}
}

// writeForever records blob facts in batches, printing how many are
// committed, until it is killed.
func writeForever(path string) {
	l, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		_ = l.RecordBlobs("r.io/ns/a", []string{digestN(i)})
		if i%500 == 499 {
			if err := l.flush(false); err != nil {
				fmt.Println("flush:", err)
				os.Exit(1)
			}
			fmt.Printf("committed %d\n", i+1)
		}
	}
}
