package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/layout"
)

// A multi-platform image that oras copied into an OCI layout (oras-go lists
// the index's children as unnamed index.json entries, beside the tagged
// index) is imported like any layout: the children go with their index.
func TestLayoutWrittenByOras(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		idx, _, children := src.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 61)
		c := &clients{t: t, oras: clientTool(t, "IMAGESYNC_ORAS"), home: t.TempDir()}
		bundle := filepath.Join(t.TempDir(), "bundle")
		c.run(c.oras, "cp", "--from-plain-http", "--to-oci-layout", src.Host+"/lib/multi:v1", bundle+":v1")

		raw, err := os.ReadFile(filepath.Join(bundle, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Manifests []struct {
				Digest      string
				Annotations map[string]string
			}
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		unnamed := 0
		for _, m := range doc.Manifests {
			if m.Annotations[layout.AnnotationName] == "" {
				unnamed++
			}
		}
		if unnamed == 0 {
			t.Fatalf("oras listed no unnamed entry (the case this test is about): %s", raw)
		}

		r := runCLI(t, nil, "oci:"+bundle, dst.Host+"/mirror", "--no-ledger")
		if r.code != 0 {
			t.Fatalf("import of the layout oras wrote: exit %d\n%s", r.code, r.stderr)
		}
		assertDigest(t, dst, "mirror", "v1", idx)
		for _, d := range children {
			if !dst.HasManifest(t, "mirror", d) {
				t.Errorf("child %s missing at the destination", d)
			}
		}
		if strings.Contains(r.stderr, "no name") {
			t.Errorf("the children were reported as unnamed images:\n%s", r.stderr)
		}
	})
}
