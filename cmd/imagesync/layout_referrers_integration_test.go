package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/report"
)

// layoutEntries reads a layout's index.json: name → digest of the named
// entries, and the unnamed ones (digest → whether the manifest has a subject).
func layoutEntries(t *testing.T, dir string) (named map[string]string, unnamed map[string]bool) {
	t.Helper()
	var idx ociIndex
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "index.json"))), &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	named, unnamed = map[string]string{}, map[string]bool{}
	for _, m := range idx.Manifests {
		if n := m.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			named[n] = m.Digest
			continue
		}
		var man struct{ Subject *struct{ Digest string } }
		raw := readFile(t, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(m.Digest, "sha256:")))
		if registrytest.Digest([]byte(raw)) != m.Digest || json.Unmarshal([]byte(raw), &man) != nil {
			t.Errorf("unnamed entry %s: its manifest does not match", m.Digest)
		}
		unnamed[m.Digest] = man.Subject != nil
	}
	return named, unnamed
}

// planRows and syncRows count the rows of plan and sync -o json as
// "subject artifact-type action", the subject by its name in names.
func planRows(names map[string]string, p filterPlan) map[string]int {
	out := map[string]int{}
	for _, j := range p.Jobs {
		out[names[j.Subject]+" "+j.ArtifactType+" "+j.Action]++
	}
	return out
}

func syncRows(names map[string]string, rep report.SyncReport) map[string]int {
	out := map[string]int{}
	for _, j := range rep.Jobs {
		out[names[j.Subject]+" "+j.ArtifactType+" "+j.Action]++
	}
	return out
}

const cosignSig = "application/vnd.dev.cosign.artifact.sig.v1+json"

// TestLayoutReferrers: a cosign-signed image with an oras SBOM, itself
// signed and annotated, exported with referrers into oci:DIR and
// oci-archive:FILE: the referrers are in the layout with the source's
// digests (OCI referrers as unnamed index.json entries oras finds, cosign's
// as named tags); a second export writes nothing; imported into a fresh
// registry, everything arrives and cosign verify passes there.
func TestLayoutReferrers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers and clients")
	}
	c := newClients(t)
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src := registrytest.Start(t, kind, registrytest.Options{})
		far := registrytest.Start(t, kind, registrytest.Options{})
		digest, _ := src.PushRandomImage(t, "lib/app", "v1", linuxAmd64, 2, 2000, true, 81)
		plain, _ := src.PushRandomImage(t, "lib/app", "v2", linuxAmd64, 1, 1000, false, 82) // no referrers
		repo := src.Host + "/lib/app"
		c.sign(repo + "@" + digest)
		sbom := c.attachSBOM(repo+"@"+digest, "v1.1-referrers-tag")
		c.sign(repo + "@" + sbom)
		note := c.attachArtifact(repo+"@"+sbom, "application/vnd.example.note", "a note on the SBOM")
		sigTag, sbomSigTag := fallbackTagOf(digest)+".sig", fallbackTagOf(sbom)+".sig"
		_, _, sig := src.Manifest(t, "lib/app", sigTag)
		_, _, sbomSig := src.Manifest(t, "lib/app", sbomSigTag)
		names := map[string]string{digest: "image", sbom: "sbom"}

		dir := t.TempDir()
		bundle, archive := filepath.Join(dir, "bundle"), filepath.Join(dir, "bundle.tar")
		export := writeFile(t, dir, "export.yaml", fmt.Sprintf("%s: [oci:%s, oci-archive:%s]\n", repo, bundle, archive))

		// plan shows the referrers as it does for registries.
		p := filterPlanJSON(t, "--referrers", "--images", export)
		if got, want := planRows(names, p), wantRows("copy", 2); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("plan of the export: %v, want %v", got, want)
		}

		src.Log.Reset()
		rep, r := syncJSON(t, "--referrers", "--images", export)
		t.Logf("export with referrers: %d requests to the source, %d blobs written", len(src.Log.All()), rep.Summary.BlobsUploaded)
		if r.code != 0 {
			t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "not written into image layouts") || strings.Contains(r.stderr, "not read from image layouts") {
			t.Errorf("export still warns that layouts do not carry referrers:\n%s", r.stderr)
		}
		if got, want := syncRows(names, rep), wantRows("copied", 2); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("export rows: %v, want %v", got, want)
		}

		// The layouts hold them, digests equal to the source's.
		tarDir := extract(t, archive)
		wantNamed := map[string]string{repo + ":v1": digest, repo + ":v2": plain, repo + ":" + sigTag: sig, repo + ":" + sbomSigTag: sbomSig}
		for _, d := range []string{bundle, tarDir} {
			named, unnamed := layoutEntries(t, d)
			if fmt.Sprint(named) != fmt.Sprint(wantNamed) {
				t.Errorf("%s names %v, want %v", d, named, wantNamed)
			}
			if want := map[string]bool{sbom: true, note: true}; fmt.Sprint(unnamed) != fmt.Sprint(want) {
				t.Errorf("%s lists without a name %v, want the SBOM and the note %v", d, unnamed, want)
			}
			// oras reads the layout and finds the referrers from their subject.
			if out := c.run(c.oras, "discover", "--oci-layout", "--format", "json", d+"@"+digest); !strings.Contains(out, sbom) || !strings.Contains(out, note) {
				t.Errorf("oras discover --oci-layout %s@image does not list the SBOM %s and its note %s:\n%s", d, sbom, note, out)
			}
			if out := c.run(c.oras, "discover", "--oci-layout", "--format", "json", "--depth", "1", d+"@"+sbom); !strings.Contains(out, note) {
				t.Errorf("oras discover --oci-layout %s@sbom does not list the note %s:\n%s", d, note, out)
			}
		}

		// A second export writes nothing (and says every referrer is there).
		before := snapshot(t, dir)
		src.Log.Reset()
		rep, r = syncJSON(t, "--referrers", "--images", export)
		t.Logf("second export: %d requests to the source (%d manifest or blob GETs)", len(src.Log.All()), src.Log.Count("GET", "/(blobs|manifests)/"))
		if got, want := syncRows(names, rep), wantRows("skipped", 2); r.code != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("second export: exit %d, rows %v, want %v", r.code, got, want)
		}
		after := snapshot(t, dir)
		delete(before, testLedger(t))
		delete(after, testLedger(t))
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("the second export changed files:\nbefore %v\nafter  %v", before, after)
		}

		// A referrer stored but no longer listed (a run stopped between the
		// two) is listed again: a copy that writes index.json only.
		var idx map[string]any
		_ = json.Unmarshal([]byte(readFile(t, filepath.Join(bundle, "index.json"))), &idx)
		var keep []any
		for _, m := range idx["manifests"].([]any) {
			if m.(map[string]any)["digest"] != note {
				keep = append(keep, m)
			}
		}
		idx["manifests"] = keep
		b, _ := json.Marshal(idx)
		writeFile(t, bundle, "index.json", string(b))
		rep, r = syncJSON(t, "--referrers", "--images", export)
		want := wantRows("skipped", 2)
		want["sbom application/vnd.example.note skipped"], want["sbom application/vnd.example.note copied"] = 1, 1
		if got := syncRows(names, rep); r.code != 0 || fmt.Sprint(got) != fmt.Sprint(want) || rep.Summary.BlobsUploaded != 0 {
			t.Errorf("export after the note was unlisted: exit %d, %d blobs written, rows %v, want %v", r.code, rep.Summary.BlobsUploaded, got, want)
		}
		if _, unnamed := layoutEntries(t, bundle); !unnamed[note] {
			t.Errorf("the note is not listed again: %v", unnamed)
		}

		// The far side: each layout into a fresh registry.
		imp := writeFile(t, dir, "import.yaml", fmt.Sprintf("oci:%s: %s/dir\noci-archive:%s: %s/tar\n", bundle, far.Host, archive, far.Host))
		p = filterPlanJSON(t, "--referrers", "--images", imp)
		if got, want := planRows(names, p), wantRows("copy", 2); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("plan of the import: %v, want %v", got, want)
		}
		for run, action := range []string{"copied", "skipped"} {
			far.Log.Reset()
			rep, r = syncJSON(t, "--referrers", "--images", imp)
			t.Logf("import run %d: %d requests to the registry, %d blobs uploaded, %d mounted", run+1, len(far.Log.All()), rep.Summary.BlobsUploaded, rep.Summary.BlobsMounted)
			if got, want := syncRows(names, rep), wantRows(action, 2); r.code != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("import run %d: exit %d, rows %v, want %v\n%s", run+1, r.code, got, want, r.stderr)
			}
		}
		if probs, r := verifyJSON(t, "--images", imp, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("verify --deep of the import: exit %d, problems %v", r.code, probs)
		}
		for _, prefix := range []string{"dir", "tar"} {
			dst := prefix + "/lib/app"
			assertDigest(t, far, dst, "v1", digest)
			assertDigest(t, far, dst, "v2", plain)
			assertDigest(t, far, dst, sigTag, sig)
			assertDigest(t, far, dst, sbomSigTag, sbomSig)
			assertDigest(t, far, dst, sbom, sbom)
			assertDigest(t, far, dst, note, note)
			if tags := far.Tags(t, dst); !slices.Contains(tags, fallbackTagOf(digest)) || !slices.Contains(tags, fallbackTagOf(sbom)) {
				t.Errorf("%s: tags %v, want the referrers tag schema's indexes of the image and the SBOM", dst, tags)
			}
			c.verify(far.Host + "/" + dst + "@" + digest)
			c.verify(far.Host + "/" + dst + "@" + sbom)
			out := c.discover(far.Host+"/"+dst+"@"+digest, "v1.1-referrers-tag")
			if !strings.Contains(out, sbom) || !strings.Contains(out, note) {
				t.Errorf("oras discover at %s does not list the SBOM and its note:\n%s", dst, out)
			}
		}

		// On the far side, oras attaches one more referrer inside the
		// layout (oras-go rewrites index.json its own way): imagesync reads
		// it and carries it with the rest.
		writeFile(t, c.home, "vex.json", `{"statements":[]}`)
		out := c.run(c.oras, "attach", "--oci-layout", "--artifact-type", "application/vnd.example.vex", "--format", "json", bundle+"@"+digest, "vex.json:application/json")
		var vex struct{ Digest string }
		if err := json.Unmarshal([]byte(out), &vex); err != nil || vex.Digest == "" {
			t.Fatalf("oras attach --oci-layout output %q: %v", out, err)
		}
		rep, r = syncJSON(t, "--referrers", "--images", imp)
		want = wantRows("skipped", 2)
		want["image application/vnd.example.vex copied"] = 1 // the directory only
		if got := syncRows(names, rep); r.code != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("import after oras attach: exit %d, rows %v, want %v\n%s", r.code, got, want, r.stderr)
		}
		assertDigest(t, far, "dir/lib/app", vex.Digest, vex.Digest)
		if out := c.discover(far.Host+"/dir/lib/app@"+digest, "v1.1-referrers-tag"); !strings.Contains(out, vex.Digest) {
			t.Errorf("oras discover at the destination does not list what oras attached in the layout:\n%s", out)
		}
	})
}

// Unnamed index.json entries of a layout source: a referrer whose subject
// the layout lacks is ignored with a warning; an entry that is not a
// referrer is still an error naming it (TestLayoutBadInput).
func TestLayoutOrphanReferrer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs a real registry server")
	}
	far := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	subject := handLayout(t, bundle, "x.io/lib/app:1")
	missing := "sha256:" + strings.Repeat("e", 64)
	orphan := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + missing + `","size":10}}`)
	od := registrytest.Digest(orphan)
	writeFile(t, filepath.Join(bundle, "blobs", "sha256"), strings.TrimPrefix(od, "sha256:"), string(orphan))
	var idx map[string]any
	_ = json.Unmarshal([]byte(readFile(t, filepath.Join(bundle, "index.json"))), &idx)
	idx["manifests"] = append(idx["manifests"].([]any), map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": od, "size": len(orphan)})
	b, _ := json.Marshal(idx)
	writeFile(t, bundle, "index.json", string(b))
	imp := writeFile(t, dir, "import.yaml", fmt.Sprintf("oci:%s: %s/m\n", bundle, far.Host))
	for _, args := range [][]string{{"plan"}, {"sync", "--referrers"}} {
		r := runCLI(t, nil, append(args, "--images", imp)...)
		if r.code != 0 || !strings.Contains(r.stderr, "ignoring a referrer whose subject is not in the layout") || !strings.Contains(r.stderr, od) {
			t.Errorf("%v: exit %d, want 0 and a warning naming %s:\n%s", args, r.code, od, r.stderr)
		}
	}
	assertDigest(t, far, "m/lib/app", "1", subject)
	if far.HasManifest(t, "m/lib/app", od) {
		t.Error("the orphaned referrer was pushed")
	}
}
