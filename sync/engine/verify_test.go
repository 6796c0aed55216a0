package engine

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

func job(src, srcRepo, dst, dstRepo, tag string) rules.Job {
	return rules.Job{
		Source:      rules.Ref{Registry: src, Repository: srcRepo, Tag: tag},
		Destination: rules.Ref{Registry: dst, Repository: dstRepo, Tag: tag},
	}
}

func kinds(r VerifyResult) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind)
	}
	return out
}

// Verify against in-memory registries: each kind of damage is found where
// it is, and what is broken is marked in the ledger for the next sync.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	src := newFake(t, nil)
	var childDigest, blobDigest string
	dst := newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/child/") && strings.HasSuffix(r.URL.Path, "/manifests/"+childDigest):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/v2/broken/") && r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
			w.WriteHeader(http.StatusForbidden)
		default:
			return false
		}
		return true
	})
	want := pushIndex(t, src.Host+"/ns/app:v1")
	ledgerPath := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := ledger.Open(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// Copy the index to every destination repository, then damage them.
	repos := []string{"ok", "missing", "other", "child", "blob", "corrupt", "broken"}
	var jobs []rules.Job
	for _, repo := range repos {
		jobs = append(jobs, job(src.Host, "ns/app", dst.Host, repo+"/app", "v1"))
	}
	if res := newEngine(t, Options{Ledger: l}).Sync(ctx, jobs, nil); res.Summary.Copied != len(repos)-1 {
		t.Fatalf("seeding: %+v", res.Summary) // broken/app refuses HEADs
	}
	if err := remote.Delete(mustRef(t, dst.Host+"/missing/app:v1")); err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(100, 1)
	if err := remote.Write(mustRef(t, dst.Host+"/other/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	raw, err := newEngine(t, Options{}).c.Repo(ctx, dst.Host, "ok/app", false)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := raw.GetManifest(ctx, want.String())
	if err != nil {
		t.Fatal(err)
	}
	children, err := parseIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	childDigest = children[1].Digest
	m, _, err := raw.GetManifest(ctx, children[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := parseImage(m)
	if err != nil {
		t.Fatal(err)
	}
	blobDigest = im.Layers[0].Digest
	dst.Blobs.del("blob/app", blobDigest)
	good, _ := dst.Blobs.get("corrupt/app", blobDigest)
	bad := slices.Clone(good)
	bad[0] ^= 0xff
	dst.Blobs.put("corrupt/app", blobDigest, bad)

	e := newEngine(t, Options{Ledger: l})
	for _, deep := range []bool{false, true} {
		results := e.Verify(ctx, jobs, VerifyOptions{Deep: deep})
		wantKinds := map[string][]string{
			"ok/app":      nil,
			"missing/app": {ProblemMissing},
			"other/app":   {ProblemDigest},
			"child/app":   {ProblemMissingChild},
			"blob/app":    {ProblemMissingBlob},
			"corrupt/app": nil,
			"broken/app":  {ProblemError},
		}
		if deep {
			wantKinds["corrupt/app"] = []string{ProblemCorruptBlob}
		}
		for i, r := range results {
			repo := jobs[i].Destination.Repository
			if r.Job != jobs[i] || !slices.Equal(kinds(r), wantKinds[repo]) {
				t.Errorf("deep=%v %s: problems %+v, want %v", deep, repo, r.Problems, wantKinds[repo])
			}
			if r.Want != want.String() {
				t.Errorf("%s: want %s, expected %s", repo, r.Want, want)
			}
			if (repo == "ok/app" || repo == "corrupt/app" || repo == "blob/app") && r.Got != want.String() {
				t.Errorf("%s: got %s", repo, r.Got)
			}
			if repo == "broken/app" && !strings.Contains(r.Problems[0].Detail, "403") {
				t.Errorf("broken/app: %+v", r.Problems)
			}
			if repo == "blob/app" && r.Problems[0].Ref != dst.Host+"/blob/app@"+blobDigest {
				t.Errorf("missing blob named %q", r.Problems[0].Ref)
			}
		}
	}
	// The broken ones are marked for repair; the good one is not.
	for _, repo := range []string{"missing", "other", "child", "blob", "corrupt"} {
		if !l.NeedsRepair(dst.Host + "/" + repo + "/app:v1") {
			t.Errorf("%s/app:v1 not marked for repair", repo)
		}
	}
	if l.NeedsRepair(dst.Host + "/ok/app:v1") {
		t.Error("ok/app:v1 marked for repair")
	}

	// Offline: the ledger says what should be there, the source is not asked.
	before := src.count("", "/manifests/")
	off := e.Verify(ctx, []rules.Job{jobs[0], job(src.Host, "ns/app", dst.Host, "never/app", "v1")}, VerifyOptions{Offline: true})
	if !off[0].OK() || off[0].Want != want.String() || !slices.Equal(kinds(off[1]), []string{ProblemUnknown}) {
		t.Errorf("offline: %+v / %+v", off[0], off[1])
	}
	if src.count("", "/manifests/") != before {
		t.Error("offline verify asked the source")
	}

	// Interrupted before it started: every job says it was not checked.
	stop := make(chan struct{})
	close(stop)
	e = newEngine(t, Options{Stop: stop})
	for _, r := range e.Verify(ctx, jobs[:2], VerifyOptions{}) {
		if !slices.Equal(kinds(r), []string{ProblemError}) || !strings.Contains(r.Problems[0].Detail, "not checked") {
			t.Errorf("interrupted: %+v", r)
		}
	}
}

// With a platform filter, a destination must hold the filtered index, and
// a source whose images all fall outside the filter needs nothing.
func TestVerifyFiltered(t *testing.T) {
	ctx := context.Background()
	src, dst := newFake(t, nil), newFake(t, nil)
	pushIndex(t, src.Host+"/ns/app:v1")
	arm, _ := ParseFilter(nil, []string{"arm64"})
	j := job(src.Host, "ns/app", dst.Host, "mirror/app", "v1")
	res := newEngine(t, Options{Filter: arm}).Sync(ctx, []rules.Job{j}, nil)
	if res.Summary.Copied != 1 {
		t.Fatalf("%+v", res.Summary)
	}
	if r := newEngine(t, Options{Filter: arm}).Verify(ctx, []rules.Job{j}, VerifyOptions{})[0]; !r.OK() || r.Want != res.Jobs[0].Digest {
		t.Errorf("filtered copy: %+v, want %s", r, res.Jobs[0].Digest)
	}
	if r := newEngine(t, Options{}).Verify(ctx, []rules.Job{j}, VerifyOptions{})[0]; !slices.Equal(kinds(r), []string{ProblemDigest}) {
		t.Errorf("unfiltered check of a filtered copy: %+v", r)
	}
	windows, _ := ParseFilter([]string{"windows"}, nil)
	if r := newEngine(t, Options{Filter: windows}).Verify(ctx, []rules.Job{j}, VerifyOptions{})[0]; !r.OK() || r.Want != "" {
		t.Errorf("nothing matches the filter: %+v", r)
	}
}
