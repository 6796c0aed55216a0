package rules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadFileSetAside: LoadFile with Options.SetAside (--skip-invalid-rules)
// keeps the valid rules and reports every error strict loading would.
func TestLoadFileSetAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "images.yaml")
	data := "quay.io/a/ok:1: r.io/ns/ok\n" + // 1 valid
		"quay.io/a/dup:1: r.io/ns/dup\n" + // 2 duplicated at 6
		"quay.io/a/env:1: $UNSET/ns/env\n" + // 3 unset variable
		"quay.io/a/count:1,2,3: r.io/ns/count:x,y\n" + // 4 count mismatch
		"quay.io/a/list:1: [r.io/ns/list, r.io/ns/list2]\n" + // 5 valid
		"quay.io/a/dup:1: r.io/ns/dup2\n" // 6
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	opt := Options{LookupEnv: env(nil)}
	aside := &SetAside{}
	valid, err := LoadFile(p, Options{LookupEnv: env(nil), SetAside: aside})
	if err != nil {
		t.Fatal(err)
	}
	skipped := aside.Errs
	var keys []string
	for _, r := range valid {
		keys = append(keys, r.Key)
	}
	if !slices.Equal(keys, []string{"quay.io/a/ok:1", "quay.io/a/list:1"}) {
		t.Errorf("valid rules %q", keys)
	}
	got := skipped.Error()
	// Strict loading reports the duplicate first; without it, the rest.
	_, strict := LoadFile(p, opt)
	noDup := filepath.Join(dir, "nodup.yaml")
	_ = os.WriteFile(noDup, []byte(strings.Replace(data, "quay.io/a/dup:1: r.io/ns/dup2\n", "", 1)), 0o600)
	_, strictRest := LoadFile(noDup, opt)
	for _, want := range append(strings.Split(strict.Error(), "\n"), strings.Split(strings.ReplaceAll(strictRest.Error(), "nodup.yaml", "images.yaml"), "\n")...) {
		if !strings.Contains(got, want) {
			t.Errorf("skipped errors lack the strict message %q:\n%s", want, got)
		}
	}
	if !strings.Contains(got, `images.yaml:2: key "quay.io/a/dup:1": duplicate key (defined again at line 6)`) {
		t.Errorf("the first definition of a duplicate key is not reported:\n%s", got)
	}
	if len(skipped) != 4 {
		t.Errorf("%d skipped errors, want 4:\n%s", len(skipped), got)
	}

	// A file that does not decode is still an error of its own.
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("a: [b\n"), 0o600)
	if _, err := LoadFile(bad, Options{LookupEnv: env(nil), SetAside: &SetAside{}}); err == nil {
		t.Error("malformed file accepted")
	}
}

// TestCheckJobsSetAside: CheckJobs with a SetAside sets both rules of a
// conflict aside, each error worded as the strict check words it.
func TestCheckJobsSetAside(t *testing.T) {
	ra := &Rule{File: "i.yaml", Line: 1, Key: "q.io/a/x:1"}
	rb := &Rule{File: "i.yaml", Line: 2, Key: "q.io/b/x:1"}
	rc := &Rule{File: "i.yaml", Line: 3, Key: "q.io/c/x:1"}
	job := func(r *Rule, src, dst string) Job {
		return Job{Source: Ref{Registry: "q.io", Repository: src, Tag: "1"}, Destination: Ref{Registry: "r.io", Repository: dst, Tag: "1"}, Rule: r}
	}
	jobs := []Job{job(ra, "a/x", "m/x"), job(ra, "a/x", "m/a"), job(rb, "b/x", "m/x"), job(rc, "c/x", "m/c"), job(rc, "c/x", "m/c")}
	aside := &SetAside{}
	out, err := CheckJobs(jobs, aside)
	if err != nil {
		t.Fatal(err)
	}
	skipped := aside.Errs
	if len(out) != 1 || out[0].Rule != rc {
		t.Errorf("kept %v, want the one job of rule c", out)
	}
	_, strict := CheckJobs(jobs, nil)
	got := skipped.Error()
	if !strings.Contains(got, strict.Error()) || !strings.Contains(got, `i.yaml:1: key "q.io/a/x:1": destination "r.io/m/x:1" is also written from "q.io/b/x:1"`) {
		t.Errorf("skipped errors:\n%s\nwant the strict one (%s) and one naming rule a", got, strict)
	}
}
