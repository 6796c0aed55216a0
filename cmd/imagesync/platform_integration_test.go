package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestPlatformFilterRewriteAndKeepIndex: an index of 3 platforms filtered to
// 2. rewrite: the destination holds exactly those children under a valid new
// index whose digest is what plan printed. keep-index: the original index
// (digest kept) over the 2 children, where the registry accepts it.
func TestPlatformFilterRewriteAndKeepIndex(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		opt := registrytest.Options{}
		if kind == registrytest.Distribution3 {
			opt.SparseIndexes = true
		}
		src, dst := pair(t, kind, opt)
		plats := []registrytest.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "arm", Variant: "v7"}}
		idx, _, children := src.PushIndex(t, "lib/multi", "v1", plats, true, 41)
		dir := t.TempDir()
		cfg := writeFile(t, dir, "imagesync.yaml", fmt.Sprintf(`defaults:
  platforms: [linux/arm/v7]
sync:
  - from: %s/lib/multi:v1
    to: %s/mirror/multi
    platforms: [linux/amd64, linux/arm64]   # overrides the defaults
`, src.Host, dst.Host))

		p := filterPlanJSON(t, "-f", cfg)
		if len(p.Jobs) != 1 || !p.Jobs[0].Rewrite || p.Jobs[0].SourceDigest != idx || p.Jobs[0].Digest == idx || p.Jobs[0].Action != "copy" {
			t.Fatalf("plan: %+v, want a rewrite of %s", p.Jobs, idx)
		}
		planned := p.Jobs[0].Digest
		if r := runCLI(t, nil, "plan", "-f", cfg); !strings.Contains(r.stdout, "rewrite") || !strings.Contains(r.stdout, planned[:len("sha256:")+12]) {
			t.Errorf("the plan table does not mark the rewrite with %s", planned)
		}
		r := runCLI(t, nil, "sync", "-f", cfg, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"rewrite": true`) || !strings.Contains(r.stdout, `"sourceDigest": "`+idx+`"`) {
			t.Fatalf("sync exit %d; the report must mark the rewrite", r.code)
		}
		raw, mt, got := dst.Manifest(t, "mirror/multi", "v1")
		if got != planned || registrytest.Digest(raw) != planned {
			t.Fatalf("destination index %s, plan printed %s", got, planned)
		}
		var index struct {
			SchemaVersion int
			MediaType     string
			ArtifactType  string
			Annotations   map[string]string
			Manifests     []struct {
				MediaType string
				Digest    string
				Size      int
				Platform  struct{ OS, Architecture, Variant string }
			}
		}
		if err := json.Unmarshal(raw, &index); err != nil {
			t.Fatalf("rewritten index is not JSON: %v", err)
		}
		if index.SchemaVersion != 2 || index.MediaType != registrytest.MediaTypeOCIIndex || mt != registrytest.MediaTypeOCIIndex ||
			index.ArtifactType != registrytest.IndexArtifactType || len(index.Annotations) == 0 {
			t.Errorf("rewritten index lost fields: %s", raw)
		}
		if len(index.Manifests) != 2 || index.Manifests[0].Digest != children[0] || index.Manifests[1].Digest != children[1] {
			t.Fatalf("rewritten index children %+v, want %s %s", index.Manifests, children[0], children[1])
		}
		for i, m := range index.Manifests {
			craw := assertDigest(t, dst, "mirror/multi", m.Digest, children[i])
			if len(craw) != m.Size || m.MediaType != registrytest.MediaTypeOCIManifest || m.Platform.Architecture != plats[i].Arch {
				t.Errorf("child %d descriptor %+v does not describe %d bytes", i, m, len(craw))
			}
		}
		if dst.HasManifest(t, "mirror/multi", children[2]) {
			t.Error("the filtered-out arm/v7 child reached the destination")
		}
		if r := runCLI(t, nil, "verify", "-f", cfg); r.code != 0 || !strings.Contains(r.stdout, "1 match, 0 differ") {
			t.Errorf("verify -f after the rewrite: exit %d", r.code)
		}

		// keep-index, one-off: the original index bytes over the kept children.
		from, to := src.Host+"/lib/multi:v1", dst.Host+"/sparse/multi"
		p = filterPlanJSON(t, "--platform", "linux/amd64,linux/arm64", "--platform-mode", "keep-index", from, to)
		if len(p.Jobs) != 1 || p.Jobs[0].Rewrite || p.Jobs[0].Digest != idx {
			t.Fatalf("keep-index plan: %+v, want digest %s without rewrite", p.Jobs, idx)
		}
		r = runCLI(t, nil, "sync", "--platform", "linux/amd64,linux/arm64", "--platform-mode", "keep-index", from, to)
		if kind == registrytest.Distribution2 {
			// 2.8 checks that every child of an index exists.
			if r.code == 0 || !strings.Contains(r.stderr, "keep-index") {
				t.Fatalf("distribution 2.8 took a sparse index (exit %d)", r.code)
			}
			return
		}
		if r.code != 0 {
			t.Fatalf("keep-index sync exit %d", r.code)
		}
		assertDigest(t, dst, "sparse/multi", "v1", idx)
		for _, c := range children[:2] {
			assertDigest(t, dst, "sparse/multi", c, c)
		}
		if dst.HasManifest(t, "sparse/multi", children[2]) {
			t.Error("keep-index copied the filtered-out child")
		}
		for _, extra := range [][]string{nil, {"--offline"}} {
			args := append([]string{"verify", "--platform", "linux/amd64,linux/arm64", "--platform-mode", "keep-index", from, to}, extra...)
			if r := runCLI(t, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "1 match, 0 differ") {
				t.Errorf("verify %v of the sparse index: exit %d", extra, r.code)
			}
		}
		// Without the filter, the same destination lacks a child.
		if r := runCLI(t, nil, "verify", from, to); r.code != 1 || !strings.Contains(r.stdout, "missing-child") {
			t.Errorf("verify without the filter: exit %d, want 1 with missing-child", r.code)
		}
	})
}
