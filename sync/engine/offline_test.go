package engine

import (
	"context"
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
	aside := &rules.SetAside{}
	e.opt.SetAside = aside // --skip-invalid-rules
	jobs, err = e.ExpandOffline([]rules.Rule{all, bad})
	if err != nil || len(jobs) != 2 || len(aside.Errs) != 1 {
		t.Fatalf("skipping: %d jobs, %v, set aside %v", len(jobs), err, aside.Errs)
	}
}

// TestExpandSetAside: with Options.SetAside (--skip-invalid-rules) both
// rules of a destination conflict are set aside with the strict error, and
// the other rule's job is returned; without it, the expansion fails.
func TestExpandSetAside(t *testing.T) {
	a := ruleFor(t, "q.io/a/x:1", "r.io/m/x:1")
	b := ruleFor(t, "q.io/b/x:1", "r.io/m/x:1")
	c := ruleFor(t, "q.io/c/x:1", "r.io/m/c")
	rs := []rules.Rule{a, b, c}
	_, _, strict := newEngine(t, Options{}).Expand(context.Background(), rs)
	if strict == nil {
		t.Fatal("a destination conflict expanded without an error")
	}
	aside := &rules.SetAside{}
	jobs, failed, err := newEngine(t, Options{SetAside: aside}).Expand(context.Background(), rs)
	if err != nil || len(failed) != 0 || len(jobs) != 1 || jobs[0].Source.String() != "q.io/c/x:1" {
		t.Fatalf("jobs %v, failed %v, %v: want the one job of the rule no conflict involves", jobs, failed, err)
	}
	if got := aside.Errs.Error(); !strings.Contains(got, strict.Error()) {
		t.Errorf("set aside:\n%s\nwant the strict error %q", got, strict)
	}
}
