package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"

	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesync/imagesync/sync/rules"
)

// Registry → layout → registry through the one engine, with the layout read
// back by go-containerregistry's own layout reader (fast: in-memory
// registries; the integration tests use real servers and skopeo).
func TestLayoutRoundTripInMemory(t *testing.T) {
	src, _ := memRegistry(t)
	dst, _ := memRegistry(t)
	want := pushIndex(t, src+"/ns/app:v1")
	ctx := context.Background()
	bundle := filepath.Join(t.TempDir(), "bundle")

	e := newEngine(t, Options{})
	defer e.Close()
	jobs, _, err := e.Expand(ctx, []rules.Rule{ruleFor(t, src+"/ns/app:v1", "oci:"+bundle)})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.Sync(ctx, jobs, nil); res.Summary.Copied != 1 {
		t.Fatalf("export: %+v %v", res.Summary, res.Jobs[0].Err)
	}

	// Another reader of OCI layouts finds the image by its name, whole.
	p, err := ggcrlayout.FromPath(bundle)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	top, _ := ii.IndexManifest()
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != want || top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != src+"/ns/app:v1" {
		t.Fatalf("index.json: %+v", top.Manifests)
	}
	idx, err := ii.ImageIndex(want)
	if err != nil {
		t.Fatal(err)
	}
	children, _ := idx.IndexManifest()
	for _, c := range children.Manifests {
		img, err := idx.Image(c.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err != nil || "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.String() {
				t.Fatalf("layer %s read through ggcr: %v", d, err)
			}
		}
	}

	// And back into a registry, below a prefix.
	e2 := newEngine(t, Options{})
	defer e2.Close()
	jobs, _, err = e2.Expand(ctx, []rules.Rule{ruleFor(t, "oci:"+bundle, dst+"/mirror")})
	if err != nil || len(jobs) != 1 || jobs[0].Destination.String() != dst+"/mirror/ns/app:v1" {
		t.Fatalf("import jobs %v, %v", jobs, err)
	}
	if res := e2.Sync(ctx, jobs, nil); res.Summary.Copied != 1 {
		t.Fatalf("import: %+v %v", res.Summary, res.Jobs[0].Err)
	}
	got, err := remote.Head(mustRef(t, dst+"/mirror/ns/app:v1"))
	if err != nil || got.Digest != want {
		t.Fatalf("imported digest %v, want %v (%v)", got, want, err)
	}
}
