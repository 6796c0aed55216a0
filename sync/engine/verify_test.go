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

	"github.com/imagesync/imagesync/oci"
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

// damaged is a source index copied to one destination repository per kind
// of damage, then damaged.
type damaged struct {
	src, dst *fake
	want     string // the index digest
	blob     string // the layer removed or corrupted
	jobs     []rules.Job
	ledger   *ledger.Ledger
}

func newDamaged(t *testing.T) *damaged {
	t.Helper()
	ctx := context.Background()
	d := &damaged{src: newFake(t, nil)}
	var child string
	d.dst = newFake(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/child/") && strings.HasSuffix(r.URL.Path, "/manifests/"+child):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/v2/broken/") && r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
			w.WriteHeader(http.StatusForbidden)
		default:
			return false
		}
		return true
	})
	d.want = pushIndex(t, d.src.Host+"/ns/app:v1").String()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d.ledger = l
	repos := []string{"ok", "missing", "other", "child", "blob", "corrupt", "broken"}
	for _, repo := range repos {
		d.jobs = append(d.jobs, job(d.src.Host, "ns/app", d.dst.Host, repo+"/app", "v1"))
	}
	if res := newEngine(t, Options{Ledger: l}).Sync(ctx, d.jobs, nil); res.Summary.Copied != len(repos)-1 {
		t.Fatalf("seeding: %+v", res.Summary) // broken/app refuses HEADs
	}
	if err := remote.Delete(mustRef(t, d.dst.Host+"/missing/app:v1")); err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(100, 1)
	if err := remote.Write(mustRef(t, d.dst.Host+"/other/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	repo, err := newEngine(t, Options{}).c.Repo(ctx, d.dst.Host, "ok/app", false)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := repo.GetManifest(ctx, d.want)
	if err != nil {
		t.Fatal(err)
	}
	children, err := oci.ParseIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	child = children[1].Digest
	m, _, err := repo.GetManifest(ctx, children[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := oci.ParseImage(m)
	if err != nil {
		t.Fatal(err)
	}
	d.blob = im.Layers[0].Digest
	d.dst.Blobs.del("blob/app", d.blob)
	good, _ := d.dst.Blobs.get("corrupt/app", d.blob)
	bad := slices.Clone(good)
	bad[0] ^= 0xff
	d.dst.Blobs.put("corrupt/app", d.blob, bad)
	return d
}

// Verify against in-memory registries: each kind of damage is found where
// it is, and what is broken is marked in the ledger for the next sync.
func TestVerify(t *testing.T) {
	d := newDamaged(t)
	e := newEngine(t, Options{Ledger: d.ledger})
	for _, deep := range []bool{false, true} {
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
		for i, r := range e.Verify(context.Background(), d.jobs, VerifyOptions{Deep: deep}) {
			repo := d.jobs[i].Destination.Repository
			if r.Job != d.jobs[i] || !slices.Equal(kinds(r), wantKinds[repo]) || r.Want != d.want {
				t.Errorf("deep=%v %s: want %s, problems %+v; expected %s, %v", deep, repo, r.Want, r.Problems, d.want, wantKinds[repo])
			}
			if (repo == "ok/app" || repo == "corrupt/app" || repo == "blob/app") && r.Got != d.want {
				t.Errorf("%s: got %s", repo, r.Got)
			}
			if repo == "broken/app" && !strings.Contains(r.Problems[0].Detail, "403") {
				t.Errorf("broken/app: %+v", r.Problems)
			}
			if repo == "blob/app" && r.Problems[0].Ref != d.dst.Host+"/blob/app@"+d.blob {
				t.Errorf("missing blob named %q", r.Problems[0].Ref)
			}
		}
	}
	// The broken ones are marked for repair; the good one is not.
	for _, repo := range []string{"missing", "other", "child", "blob", "corrupt"} {
		if !d.ledger.NeedsRepair(d.dst.Host + "/" + repo + "/app:v1") {
			t.Errorf("%s/app:v1 not marked for repair", repo)
		}
	}
	if d.ledger.NeedsRepair(d.dst.Host + "/ok/app:v1") {
		t.Error("ok/app:v1 marked for repair")
	}
}

// Offline, the ledger says what should be there and the source is not
// asked; interrupted before it started, every job says it was not checked.
func TestVerifyOfflineAndInterrupted(t *testing.T) {
	ctx := context.Background()
	d := newDamaged(t)
	before := d.src.count("", "/manifests/")
	never := job(d.src.Host, "ns/app", d.dst.Host, "never/app", "v1")
	off := newEngine(t, Options{Ledger: d.ledger}).Verify(ctx, []rules.Job{d.jobs[0], never}, VerifyOptions{Offline: true})
	if !off[0].OK() || off[0].Want != d.want || !slices.Equal(kinds(off[1]), []string{ProblemUnknown}) {
		t.Errorf("offline: %+v / %+v", off[0], off[1])
	}
	if d.src.count("", "/manifests/") != before {
		t.Error("offline verify asked the source")
	}

	stop := make(chan struct{})
	close(stop)
	for _, r := range newEngine(t, Options{Stop: stop}).Verify(ctx, d.jobs[:2], VerifyOptions{}) {
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
