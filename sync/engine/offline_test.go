package engine

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// Offline, a rule that lists tags takes them from what the ledger saw
// copied from that source repository; the source is never asked.
func TestExpandOffline(t *testing.T) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tag := range []string{"2", "1"} {
		if err := l.RecordManifest("r.io/x/b:"+tag, ledger.Entry{Digest: d, Src: "q.io/a/b:" + tag, SrcDigest: d}); err != nil {
			t.Fatal(err)
		}
	}
	e := newEngine(t, Options{Ledger: l})
	all := ruleFor(t, "127.0.0.1:1/a/b", "r.io/x/b")
	all.Source.Registry = "q.io" // never asked: no registry there
	bad := ruleFor(t, "q.io/a/c:1,2", "r.io/x/c:one")

	jobs, err := e.ExpandOffline([]rules.Rule{all})
	var got []string
	for _, j := range jobs {
		got = append(got, j.Source.String()+" -> "+j.Destination.String())
	}
	if err != nil || !slices.Equal(got, []string{"q.io/a/b:1 -> r.io/x/b:1", "q.io/a/b:2 -> r.io/x/b:2"}) {
		t.Fatalf("jobs %v, %v", got, err)
	}
	if _, err := e.ExpandOffline([]rules.Rule{all, bad}); err == nil {
		t.Fatal("an invalid rule expanded offline without an error")
	}
	jobs, skipped := e.ExpandOfflineSkipping([]rules.Rule{all, bad})
	if len(jobs) != 2 || len(skipped) != 1 {
		t.Fatalf("skipping: %d jobs, skipped %v", len(jobs), skipped)
	}
}
