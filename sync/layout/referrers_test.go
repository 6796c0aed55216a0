package layout

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/registry/client"
)

// referrerOf stores (by digest) a manifest referring to subject, with an
// artifact type and an annotation, and lists it (IndexReferrer).
func referrerOf(t *testing.T, r *Repo, subject, artifactType, body string, list bool) string {
	t.Helper()
	b := []byte(body)
	if err := r.PutUpload(ctx, "", client.Digest(b), int64(len(b)), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + artifactType +
		`","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[{"mediaType":"text/plain","digest":"` + client.Digest(b) + `","size":` + itoa(len(b)) + `}],` +
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + subject + `","size":1},` +
		`"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z","` + AnnotationName + `":"must-not-name-it"}}`)
	d := client.Digest(m)
	if err := r.PutManifest(ctx, d, client.MediaOCIManifest, m); err != nil {
		t.Fatal(err)
	}
	if list {
		if err := r.IndexReferrer(ctx, d, client.MediaOCIManifest); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// referrersListed returns digest → artifactType of what Referrers answers.
func referrersListed(t *testing.T, r *Repo, subject string) map[string]string {
	t.Helper()
	raw, err := r.Referrers(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest, ArtifactType string
			Annotations          map[string]string
		} `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil || idx.MediaType != string(client.MediaOCIIndex) {
		t.Fatalf("referrers of %s: %s (%v)", subject, raw, err)
	}
	out := map[string]string{}
	for _, m := range idx.Manifests {
		out[m.Digest] = m.ArtifactType
		if _, ok := m.Annotations[AnnotationName]; ok {
			t.Errorf("referrer %s carries a name annotation", m.Digest)
		}
	}
	return out
}

func TestLayoutReferrers(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(map[bool]string{false: "directory", true: "archive"}[archive], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bundle")
			if archive {
				path += ".tar"
			}
			l, err := NewSet().Open(path, archive, false)
			if err != nil {
				t.Fatal(err)
			}
			subject := image(t, l.Repo("x.io/app"), "v1", "layer")
			other := image(t, l.Repo("x.io/other"), "v1", "other layer")
			sbom := referrerOf(t, l.Repo("x.io/app"), subject, "application/spdx+json", "sbom", true)
			sig := referrerOf(t, l.Repo("x.io/app"), sbom, "application/vnd.example.sig", "signature of the sbom", true)
			unlisted := referrerOf(t, l.Repo("x.io/app"), subject, "application/vnd.example.unlisted", "stored only", false)

			// Found from their subject, in any repository's view of the layout.
			for _, r := range []*Repo{l.Repo("x.io/app"), l.Repo("y.io/elsewhere")} {
				if got := referrersListed(t, r, subject); len(got) != 1 || got[sbom] != "application/spdx+json" {
					t.Errorf("referrers of the image: %v, want only %s", got, sbom)
				}
				if got := referrersListed(t, r, sbom); len(got) != 1 || got[sig] == "" {
					t.Errorf("referrers of the sbom: %v, want %s", got, sig)
				}
				if got := referrersListed(t, r, other); len(got) != 0 {
					t.Errorf("referrers of an image without any: %v", got)
				}
			}
			repo := l.Repo("x.io/app")
			if !repo.Lists(sbom) || repo.Lists(unlisted) {
				t.Errorf("Lists: sbom %v (want true), stored-only %v (want false)", repo.Lists(sbom), repo.Lists(unlisted))
			}
			// Listing twice adds nothing.
			if err := repo.IndexReferrer(ctx, sbom, client.MediaOCIManifest); err != nil {
				t.Fatal(err)
			}
			// A manifest without a subject is not a referrer.
			empty := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
			if err := repo.PutManifest(ctx, client.Digest(empty), client.MediaOCIIndex, empty); err != nil {
				t.Fatal(err)
			}
			if err := repo.IndexReferrer(ctx, client.Digest(empty), client.MediaOCIIndex); err == nil || !strings.Contains(err.Error(), "no subject") {
				t.Errorf("IndexReferrer of an image: %v", err)
			}
			if err := l.Finish(); err != nil {
				t.Fatal(err)
			}
			dir := path
			if archive {
				dir = indexOfTar(t, path)
			}
			checkIndexEntries(t, dir, subject, sbom, sig)

			// Read again: the referrers come from index.json; names stay the images'.
			var st1 os.FileInfo
			if archive {
				st1, _ = os.Stat(path)
			}
			l, err = NewSet().Open(path, archive, true)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := l.Names(); !slices.Equal(got, []string{"x.io/app:v1", "x.io/other:v1"}) {
				t.Errorf("names %v", got)
			}
			if got := referrersListed(t, l.Repo("x.io/app"), subject); len(got) != 1 || got[sbom] == "" {
				t.Errorf("referrers read back: %v", got)
			}
			if others, orphans := l.UnnamedEntries(); len(others) != 0 || len(orphans) != 0 {
				t.Errorf("unnamed entries: others %v, orphans %v; want none", others, orphans)
			}
			if err := l.Repo("x.io/app").IndexReferrer(ctx, sig, client.MediaOCIManifest); err != nil {
				t.Fatal(err)
			}
			if err := l.Finish(); err != nil {
				t.Fatal(err)
			}
			if archive {
				if st, _ := os.Stat(path); !st.ModTime().Equal(st1.ModTime()) || st.Size() != st1.Size() {
					t.Error("listing a listed referrer rewrote the archive")
				}
				if _, err := os.Stat(path + ".partial"); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("listing a listed referrer staged: %v", err)
				}
			}
		})
	}
}

// checkIndexEntries: index.json names the two images and lists the two
// referrers without a name, as oras-go's OCI store does, with their
// artifact type.
func checkIndexEntries(t *testing.T, dir, subject string, referrers ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct{ Manifests []descriptor }
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var unnamed []string
	named := 0
	for _, m := range idx.Manifests {
		if m.Annotations[AnnotationName] != "" {
			named++
			continue
		}
		unnamed = append(unnamed, m.Digest)
		if m.ArtifactType == "" || m.MediaType != string(client.MediaOCIManifest) || m.Annotations["org.opencontainers.image.created"] == "" {
			t.Errorf("referrer entry %+v: want its media type, artifact type and annotations", m)
		}
	}
	if named != 2 || !slices.Equal(unnamed, referrers) {
		t.Errorf("index.json: %d named, unnamed %v; want 2 and %v\n%s", named, unnamed, referrers, b)
	}
}

// indexOfTar copies an archive's index.json into a directory (what
// checkIndexEntries reads) and returns it.
func indexOfTar(t *testing.T, file string) string {
	t.Helper()
	tl, err := openTar(file)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IndexFile), tl.index.encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Unnamed entries: a referrer whose subject the layout lacks is an orphan
// (ignored with a warning by the engine); one without a subject has no
// name to be copied under.
func TestUnnamedEntries(t *testing.T) {
	dir, l := newLayout(t)
	r := l.Repo("x.io/app")
	subject := image(t, r, "v1", "layer")
	ok := referrerOf(t, r, subject, "application/spdx+json", "sbom", true)
	missing := "sha256:" + strings.Repeat("b", 64)
	orphan := referrerOf(t, r, missing, "application/spdx+json", "orphan", true)
	plain := image(t, r, "@", "plain") // named by digest
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	// Add by hand an unnamed entry that is an image, and one whose manifest is missing.
	editIndex(t, dir, func(ms []any) []any {
		return append(ms, map[string]any{"mediaType": string(client.MediaOCIManifest), "digest": plain, "size": 1},
			map[string]any{"mediaType": string(client.MediaOCIManifest), "digest": "sha256:" + strings.Repeat("c", 64), "size": 1})
	})

	l, err := NewSet().Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	others, orphans := l.UnnamedEntries()
	if len(orphans) != 1 || orphans[0].Digest != orphan || orphans[0].Subject != missing || orphans[0].Position != 3 {
		t.Errorf("orphans %+v, want %s (entry 3) of %s", orphans, orphan, missing)
	}
	if len(others) != 2 || others[0].Digest != plain || others[0].Position != 5 || others[1].Position != 6 {
		t.Errorf("others %+v, want entries 5 (%s) and 6", others, plain)
	}
	if got := referrersListed(t, r, subject); len(got) != 1 || got[ok] == "" {
		t.Errorf("referrers %v", got)
	}
}

// A layout written without referrers from a registry that keeps them under
// the referrers tag schema names the sha256-<hex> index: its manifests
// count as referrers too.
func TestReferrersFromTagSchemaIndex(t *testing.T) {
	_, l := newLayout(t)
	r := l.Repo("x.io/app")
	subject := image(t, r, "v1", "layer")
	sbom := referrerOf(t, r, subject, "application/spdx+json", "sbom", false)
	fallback := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sbom + `","size":1,"artifactType":"application/spdx+json"}]}`)
	if err := r.PutManifest(ctx, strings.Replace(subject, ":", "-", 1), client.MediaOCIIndex, fallback); err != nil {
		t.Fatal(err)
	}
	if got := referrersListed(t, r, subject); len(got) != 1 || got[sbom] != "application/spdx+json" {
		t.Errorf("referrers %v, want %s from the tag schema index", got, sbom)
	}
	if got := referrersListed(t, l.Repo("x.io/elsewhere"), subject); len(got) != 0 {
		t.Errorf("another repository's tag schema index was read: %v", got)
	}
}

// oras-go lists the children of an index it stores as unnamed index.json
// entries too: they are copied with their index, not refused as images
// without a name.
func TestUnnamedIndexChildren(t *testing.T) {
	dir, l := newLayout(t)
	r := l.Repo("x.io/multi")
	amd := image(t, r, "@", "amd64 layer")
	arm := image(t, r, "@", "arm64 layer")
	idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + amd + `","size":1,"platform":{"os":"linux","architecture":"amd64"}},` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + arm + `","size":1,"platform":{"os":"linux","architecture":"arm64"}}]}`)
	if err := r.PutManifest(ctx, "v1", client.MediaOCIIndex, idx); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	// As oras writes it: the children listed without a name.
	editIndex(t, dir, func(ms []any) []any {
		for _, m := range ms {
			if e := m.(map[string]any); e["digest"] == amd || e["digest"] == arm {
				delete(e, "annotations")
			}
		}
		return ms
	})
	l, err := NewSet().Open(dir, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, unnamed := l.Names(); len(unnamed) != 2 {
		t.Fatalf("unnamed entries %+v, want the two children", unnamed)
	}
	others, orphans := l.UnnamedEntries()
	if len(others) != 0 || len(orphans) != 0 {
		t.Errorf("children of a listed index counted as unnamed images %+v or orphans %+v", others, orphans)
	}
}

// newLayout opens a new layout in a test folder.
func newLayout(t *testing.T) (string, *Layout) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	l, err := NewSet().Open(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return dir, l
}

// editIndex rewrites the manifests of a layout's index.json by hand.
func editIndex(t *testing.T, dir string, edit func([]any) []any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["manifests"] = edit(doc["manifests"].([]any))
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
