package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/ledger"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestLedgerExportAndStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.RecordBlobs("dst.io/lib/a", []string{digestA, digestB})
	_ = l.RecordBlobs("dst.io/lib/b", []string{digestA})
	_ = l.RecordManifest("dst.io/lib/a:1", ledger.Entry{Digest: digestB, Src: "src.io/lib/a:1", SrcDigest: digestB})
	_ = l.Invalidate("dst.io/lib/c", "dst.io/lib/c:2")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, nil, "ledger", "export", "--ledger", path)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 5 {
		t.Fatalf("export: exit %d, %d lines", r.code, len(lines))
	}
	want := []string{
		`{"t":"x","repo":"dst.io/lib/c","ref":"dst.io/lib/c:2"}`,
		`{"t":"b","repo":"dst.io/lib/a","d":["` + digestA + `","` + digestB + `"]}`,
		`{"t":"b","repo":"dst.io/lib/b","d":["` + digestA + `"]}`,
	}
	if !strings.HasPrefix(lines[0], `{"t":"h","v":1,"created":"`) || strings.Join(lines[1:4], "\n") != strings.Join(want, "\n") ||
		!strings.HasPrefix(lines[4], `{"t":"m","dst":"dst.io/lib/a:1","digest":"`+digestB+`","src":"src.io/lib/a:1","srcDigest":"`+digestB+`","time":"`) {
		t.Errorf("export:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "ledger", "stats", "--ledger", path, "-o", "json")
	var st ledger.Stats
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		t.Fatalf("stats: exit %d, %v", r.code, err)
	}
	if st.Manifests != 1 || st.Repositories != 2 || st.BlobFacts != 3 || st.Registries != 1 || st.Repairs != 1 || st.FileBytes == 0 || st.Format != "database" {
		t.Errorf("stats %+v", st)
	}
	r = runCLI(t, nil, "ledger", "stats", "--ledger", path)
	for _, s := range []string{"destination manifests    1\n", "blob facts               3\n", "marked for repair        1\n"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stats table lacks %q:\n%s", s, r.stdout)
		}
	}

	// A JSON-lines ledger is shown as it is, not migrated.
	old := filepath.Join(t.TempDir(), "old.jsonl")
	content := `{"t":"h","v":1}` + "\n" + `{"t":"m","dst":"dst.io/lib/a:1","digest":"` + digestA + `"}` + "\n"
	writeFile(t, filepath.Dir(old), "old.jsonl", content)
	r = runCLI(t, nil, "ledger", "stats", "--ledger", old)
	if r.code != 0 || !strings.Contains(r.stdout, "json-lines") || !strings.Contains(r.stdout, "destination manifests    1\n") {
		t.Errorf("stats of a JSON-lines ledger: exit %d", r.code)
	}
	if readFile(t, old) != content {
		t.Error("ledger stats changed a JSON-lines ledger")
	}
	if r := runCLI(t, nil, "ledger", "export", "--ledger", writeFile(t, t.TempDir(), "x.db", "not a ledger")); r.code != exitUsage || !strings.Contains(r.stderr, "not an imagesync ledger") {
		t.Errorf("export of a file that is no ledger: exit %d", r.code)
	}
}

// plan reads the ledger and writes nothing: no file for a missing ledger,
// a JSON-lines ledger left as it is; the next sync migrates it.
func TestPlanLeavesJSONLinesLedger(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 1, 1000, true, 611)
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/a:1: %s/lib/a\n", src.Host, dst.Host))
	missing := filepath.Join(dir, "state", "ledger.db")
	if p, r := planJSON(t, "--images", images, "--ledger", missing); r.code != 0 || p.Summary["copy"] != 1 {
		t.Fatalf("plan: exit %d, %v", r.code, p.Summary)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Error("plan created the ledger's folder")
	}

	old := filepath.Join(dir, "ledger.jsonl")
	content := fmt.Sprintf(`{"t":"h","v":1}`+"\n"+`{"t":"m","dst":"%s/lib/other:1","digest":"%s","src":"%s/lib/other:1","srcDigest":"%s"}`+"\n", dst.Host, d, src.Host, d)
	writeFile(t, dir, "ledger.jsonl", content)
	if p, r := planJSON(t, "--images", images, "--ledger", old); r.code != 0 || p.Summary["copy"] != 1 {
		t.Fatalf("plan with a JSON-lines ledger: exit %d, %v", r.code, p.Summary)
	}
	if readFile(t, old) != content {
		t.Error("plan changed the JSON-lines ledger")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // images.yaml, ledger.jsonl
		t.Errorf("plan left files: %v", entries)
	}
	if r := runCLI(t, nil, "--images", images, "--ledger", old); r.code != 0 || !strings.Contains(r.stderr, "migrated 2 records") {
		t.Fatalf("sync: exit %d", r.code)
	}
	assertDigest(t, dst, "lib/a", "1", d)
	if readFile(t, old+".bak") != content {
		t.Error("the JSON-lines ledger was not kept as .bak")
	}
	if e := ledgerEntry(t, old, dst.Host+"/lib/a:1"); e.Digest != d {
		t.Errorf("after the sync the ledger holds %+v", e)
	}
	if e := ledgerEntry(t, old, dst.Host+"/lib/other:1"); e.Digest != d {
		t.Errorf("the migrated entry is %+v", e)
	}
}
