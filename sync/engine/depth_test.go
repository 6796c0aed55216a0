package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// pushNested pushes an image wrapped in levels indexes, each the only
// child of the next.
func pushNested(t *testing.T, ref string, levels int) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.ImageIndex = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img})
	for range levels - 1 {
		idx = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: idx})
	}
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

// A chain of nested indexes deeper than maxIndexDepth is refused; sync,
// plan with a platform filter and verify all stop there.
func TestIndexNestingIsBounded(t *testing.T) {
	src, _ := memRegistry(t)
	dst, _ := memRegistry(t)
	pushNested(t, src+"/ns/ok:v1", 3)
	pushNested(t, src+"/ns/deep:v1", maxIndexDepth+3)
	ctx := context.Background()
	e := newEngine(t, Options{})
	jobs, _, err := e.Expand(ctx, []rules.Rule{ruleFor(t, src+"/ns/ok:v1", dst+"/ns/ok"), ruleFor(t, src+"/ns/deep:v1", dst+"/ns/deep")})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(ctx, jobs, nil)
	for _, r := range res.Jobs {
		deep := strings.Contains(r.Job.Source.Repository, "deep")
		switch {
		case deep && (r.Action != Failed || !strings.Contains(r.Err.Error(), "nested more than")):
			t.Errorf("deep chain: %s %v", r.Action, r.Err)
		case !deep && r.Action != Copied:
			t.Errorf("3 levels: %s %v", r.Action, r.Err)
		}
	}
	f, _ := ParseFilter(nil, []string{"amd64"})
	if _, _, err := filterIndex(ctx, mustRepo(t, e, src, "ns/deep"), mustManifest(t, e, src, "ns/deep"), f, map[string]manifestBytes{}); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("filter on the deep chain: %v", err)
	}
}

func mustRepo(t *testing.T, e *Engine, host, repo string) *client.Repo {
	t.Helper()
	r, err := e.c.Repo(context.Background(), host, repo, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustManifest(t *testing.T, e *Engine, host, repo string) []byte {
	t.Helper()
	raw, _, err := mustRepo(t, e, host, repo).GetManifest(context.Background(), "v1")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
