package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

func job(src, dst string) rules.Job {
	return rules.Job{
		Source:      rules.Ref{Registry: "src.io", Repository: "ns/" + src, Tag: "1"},
		Destination: rules.Ref{Registry: "dst.io", Repository: "m/" + dst, Tag: "1"},
	}
}

var results = []engine.JobResult{
	{Job: job("a", "a"), Action: engine.Copied, Digest: "sha256:0123456789abcdef0123", Bytes: 2048},
	{Job: job("a", "b"), Action: engine.Skipped, Digest: "sha256:0123456789abcdef0123"},
	{Job: job("c", "c"), Action: engine.Failed, Err: errors.New("HEAD …: 404 not found"), Attempts: 3},
	{Job: job("d", "d"), Action: engine.Filtered, Err: errors.New("no image matches")},
}

func TestLine(t *testing.T) {
	for i, want := range []string{
		"copied   src.io/ns/a:1 → dst.io/m/a:1 sha256:0123456789ab 2.0 KiB",
		"skipped  src.io/ns/a:1 → dst.io/m/b:1 sha256:0123456789ab",
		"failed   src.io/ns/c:1 → dst.io/m/c:1 (after 3 attempts): HEAD …: 404 not found",
		"filtered src.io/ns/d:1 → dst.io/m/d:1: no image matches",
	} {
		if got := Line(results[i]); got != want {
			t.Errorf("Line %d:\n got %q\nwant %q", i, got, want)
		}
	}
}

func TestImageFiles(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	if err := WriteFile(ok, "yaml", SuccessImages(results)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(ok)
	if string(b) != "src.io/ns/a:1:\n    - dst.io/m/a:1\n    - dst.io/m/b:1\n" {
		t.Errorf("success yaml:\n%s", b)
	}
	bad := filepath.Join(dir, "failed.json")
	if err := WriteFile(bad, "json", FailedImages(results)); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(bad)
	if !strings.Contains(string(b), `"src.io/ns/c:1": {`) || !strings.Contains(string(b), `"dst.io/m/c:1": "HEAD …: 404 not found"`) || strings.Contains(string(b), "ns/d") {
		t.Errorf("failed json:\n%s", b)
	}
	if err := WriteFile(filepath.Join(dir, "x"), "xml", nil); err == nil {
		t.Error("xml accepted")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// An error row does not widen the table: its reason goes on its own
// indented line, the columns are sized by the names, no line ends in
// spaces.
func TestPlanTableKeepsErrorsOutOfColumns(t *testing.T) {
	long := errors.New(strings.Repeat("a very long registry error ", 15))
	res := &engine.Result{Jobs: []engine.JobResult{
		{Job: job("a", "a"), Action: engine.WouldCopy, Digest: "sha256:0123456789abcdef0123", Bytes: 2048},
		{Job: job("c", "c"), Action: engine.Failed, Err: long},
	}}
	var b strings.Builder
	if err := NewPlan(res).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		"ACTION  SOURCE         DESTINATION   DIGEST               BYTES",
		"copy    src.io/ns/a:1  dst.io/m/a:1  sha256:0123456789ab  2.0 KiB",
		"error   src.io/ns/c:1  dst.io/m/c:1",
		"    " + strings.TrimSpace(long.Error()),
		"",
		"1 to copy, 0 to update, 0 in sync, 0 filtered, 1 error; 2.0 KiB to upload",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces: %q", l)
		}
	}
}

func TestReferrerRows(t *testing.T) {
	sub := "sha256:" + strings.Repeat("a", 64)
	sig := "sha256:" + strings.Repeat("b", 64)
	tag := "sha256-" + strings.Repeat("a", 64) + ".sig"
	rows := []engine.JobResult{
		{Job: rules.Job{Source: rules.Ref{Registry: "src.io", Repository: "ns/a", Tag: tag, Digest: sig}, Destination: rules.Ref{Registry: "dst.io", Repository: "m/a", Tag: tag, Digest: sig}},
			Action: engine.Copied, Digest: sig, Subject: sub, ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json"},
		{Job: rules.Job{Source: rules.Ref{Registry: "src.io", Repository: "ns/a", Tag: tag, Digest: sig}, Destination: rules.Ref{Registry: "dst.io", Repository: "m/b", Tag: tag, Digest: sig}},
			Action: engine.Failed, Err: errors.New("denied"), Subject: sub},
	}
	if got := Line(rows[0]); !strings.HasSuffix(got, "(referrer application/vnd.dev.cosign.artifact.sig.v1+json of sha256:aaaaaaaaaaaa)") {
		t.Errorf("line %q", got)
	}
	if s := SuccessImages(rows); len(s) != 0 {
		t.Errorf("referrers in the success images: %v", s)
	}
	f := FailedImages(rows)
	if f["src.io/ns/a@"+sig]["dst.io/m/b"] != "denied" {
		t.Errorf("failed referrer: %v", f)
	}
}
