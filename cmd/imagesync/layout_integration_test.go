package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// layoutNames returns name → digest from a layout directory's index.json.
func layoutNames(t *testing.T, dir string) map[string]string {
	t.Helper()
	names, _ := layoutIndex(t, dir)
	return names
}

// ociTyped lists the names whose index.json entry has an OCI media type:
// skopeo (containers/image) looks only at those, and skips Docker-typed
// entries, which imagesync keeps byte for byte with their own media type.
func ociTyped(t *testing.T, dir string) []string {
	t.Helper()
	_, oci := layoutIndex(t, dir)
	return oci
}

func layoutIndex(t *testing.T, dir string) (map[string]string, []string) {
	t.Helper()
	var idx ociIndex
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "index.json"))), &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	out := map[string]string{}
	var oci []string
	for _, m := range idx.Manifests {
		name := m.Annotations["org.opencontainers.image.ref.name"]
		if name == "" {
			t.Errorf("index.json entry %s has no name", m.Digest)
		}
		out[name] = m.Digest
		if strings.HasPrefix(m.MediaType, "application/vnd.oci.") {
			oci = append(oci, name)
		}
	}
	return out, oci
}

// checkLayoutComplete walks a layout from index.json: every manifest and
// blob is present and hashes to its name. Every file in blobs/sha256 named
// by a digest hashes to it (no torn blob). exact: blobs/sha256 holds exactly
// the reachable blobs, each once, and nothing else (a killed run may leave
// unreferenced blobs and temporary files).
func checkLayoutComplete(t *testing.T, dir string, exact bool) {
	t.Helper()
	if got := readFile(t, filepath.Join(dir, "oci-layout")); !strings.Contains(got, `"imageLayoutVersion":"1.0.0"`) {
		t.Errorf("oci-layout: %s", got)
	}
	reachable := map[string]bool{}
	var walk func(digest string, manifest bool)
	walk = func(digest string, manifest bool) {
		if reachable[digest] {
			return
		}
		reachable[digest] = true
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
		if err != nil {
			t.Errorf("blob %s: %v", digest, err)
			return
		}
		if got := registrytest.Digest(b); got != digest {
			t.Errorf("blob %s hashes to %s", digest, got)
		}
		if !manifest {
			return
		}
		var m ociIndex
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("manifest %s: %v", digest, err)
			return
		}
		for _, c := range m.Manifests {
			walk(c.Digest, true)
		}
		if m.Config != nil {
			walk(m.Config.Digest, false)
		}
		for _, l := range m.Layers {
			walk(l.Digest, false)
		}
	}
	for _, d := range layoutNames(t, dir) {
		walk(d, true)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if !exact && strings.HasPrefix(e.Name(), ".tmp-") {
			t.Logf("temporary file left by the killed run: %s", e.Name())
			continue
		}
		files = append(files, "sha256:"+e.Name())
		if b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Name())); err != nil || registrytest.Digest(b) != "sha256:"+e.Name() {
			t.Errorf("blobs/sha256/%s does not hash to its name (%v)", e.Name(), err)
		}
	}
	if !exact {
		return
	}
	var want []string
	for d := range reachable {
		want = append(want, d)
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("blobs/sha256 holds %d files, want the %d reachable blobs each once:\nfiles %v\nwant  %v", len(files), len(want), files, want)
	}
}

// skopeoRaw returns the digest of the manifest skopeo reads for ref.
func skopeoRaw(t *testing.T, ref string) string {
	t.Helper()
	cmd := exec.Command(skopeo(t), "inspect", "--raw", ref)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("skopeo inspect --raw %s: %v %s", ref, err, msg)
	}
	return registrytest.Digest(out)
}

// skopeoConfig makes skopeo read an image's config through the layout.
func skopeoConfig(t *testing.T, ref string) map[string]any {
	t.Helper()
	cmd := exec.Command(skopeo(t), "inspect", "--config", ref)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config %s: %v", ref, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("skopeo config of %s: %v", ref, err)
	}
	return cfg
}

// airGap is two source registries and a fresh registry for the far side.
type airGap struct {
	s1, s2, far *registrytest.Registry
	dir         string
	want        map[string]string // full source name → digest
	export      string
}

func newAirGap(t *testing.T, kind registrytest.Kind) *airGap {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	a := &airGap{
		s1:   registrytest.Start(t, kind, registrytest.Options{}),
		s2:   registrytest.Start(t, kind, registrytest.Options{}),
		far:  registrytest.Start(t, kind, registrytest.Options{}),
		dir:  t.TempDir(),
		want: map[string]string{},
	}
	S1, S2 := a.s1.Host, a.s2.Host
	for i, tag := range []string{"1.0", "1.1", "2.0"} {
		a.want[S1+"/lib/app:"+tag], _ = a.s1.PushRandomImage(t, "lib/app", tag, linuxAmd64, 2, 3000, i%2 == 0, int64(40+i))
	}
	idx, _, _ := a.s1.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 50)
	a.want[S1+"/lib/multi:v1"] = idx
	pinned, _ := a.s1.PushRandomImage(t, "lib/pinned", "x", linuxAmd64, 1, 1000, true, 60)
	a.want[S1+"/lib/pinned@"+pinned] = pinned
	// The same image in the second registry: its blobs are stored once.
	a.want[S2+"/team/copy:1.0"], _ = a.s2.PushRandomImage(t, "team/copy", "1.0", linuxAmd64, 2, 3000, true, 40)
	a.want[S2+"/team/tool:2.5"], _ = a.s2.PushRandomImage(t, "team/tool", "2.5", linuxAmd64, 1, 2000, false, 70)
	a.s2.PushRandomImage(t, "team/tool", "3.0", linuxAmd64, 1, 2000, false, 71) // not selected
	if a.want[S2+"/team/copy:1.0"] != a.want[S1+"/lib/app:1.0"] {
		t.Fatal("seeding: the shared image differs")
	}
	a.export = writeFile(t, a.dir, "export.yaml", fmt.Sprintf(`%[1]s/lib/app: [oci:%[3]s/bundle, oci-archive:%[3]s/bundle.tar]
%[1]s/lib/multi:v1: [oci:%[3]s/bundle, oci-archive:%[3]s/bundle.tar]
%[1]s/lib/pinned@%[4]s: [oci:%[3]s/bundle, oci-archive:%[3]s/bundle.tar]
%[2]s/team/copy:1.0: [oci:%[3]s/bundle, oci-archive:%[3]s/bundle.tar]
"%[2]s/team/tool:/^2\\./": [oci:%[3]s/bundle, oci-archive:%[3]s/bundle.tar]
`, S1, S2, a.dir, pinned))
	return a
}

func TestLayoutExportImport(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		a := newAirGap(t, kind)
		bundle, archive := filepath.Join(a.dir, "bundle"), filepath.Join(a.dir, "bundle.tar")

		rep, r := syncJSON(t, "--images", a.export)
		if r.code != 0 || rep.Summary.Copied != 2*len(a.want) {
			t.Fatalf("export: exit %d, %d copied, want %d", r.code, rep.Summary.Copied, 2*len(a.want))
		}
		// Named by their full source reference, digests exact, in both forms.
		tarDir := extract(t, archive)
		for _, dir := range []string{bundle, tarDir} {
			names := layoutNames(t, dir)
			if len(names) != len(a.want) {
				t.Errorf("%s names %d images, want %d: %v", dir, len(names), len(a.want), names)
			}
			for name, d := range a.want {
				if names[name] != d {
					t.Errorf("%s: %s is %q, want %s", dir, name, names[name], d)
				}
			}
			checkLayoutComplete(t, dir, true)
		}
		if _, err := os.Stat(archive + ".partial"); !os.IsNotExist(err) {
			t.Errorf("the archive's staging directory is left: %v", err)
		}

		// Another tool reads both.
		oci := ociTyped(t, bundle)
		if len(oci) != 5 {
			t.Errorf("%d OCI-typed images in the layout, want 5: %v", len(oci), oci)
		}
		for _, name := range oci {
			d := a.want[name]
			for _, ref := range []string{"oci:" + bundle + ":" + name, "oci-archive:" + archive + ":" + name} {
				if got := skopeoRaw(t, ref); got != d {
					t.Errorf("skopeo reads %s as %s, want %s", ref, got, d)
				}
			}
		}
		if cfg := skopeoConfig(t, "oci:"+bundle+":"+a.s2.Host+"/team/copy:1.0"); cfg["architecture"] != "amd64" {
			t.Errorf("skopeo config: %v", cfg)
		}
		// skopeo copies an image out of the archive, reading (and checking) every blob.
		copied := t.TempDir()
		name := a.s1.Host + "/lib/app:1.0"
		cmd := exec.Command(skopeo(t), "copy", "oci-archive:"+archive+":"+name, "dir:"+copied)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy from the archive: %v\n%s", err, out)
		}
		if got := registrytest.Digest([]byte(readFile(t, filepath.Join(copied, "manifest.json")))); got != a.want[name] {
			t.Errorf("skopeo copied %s as %s, want %s", name, got, a.want[name])
		}

		// A second export writes nothing and downloads nothing.
		before := snapshot(t, a.dir)
		a.s1.Log.Reset()
		a.s2.Log.Reset()
		success := filepath.Join(t.TempDir(), "success.yaml")
		rep, r = syncJSON(t, "--images", a.export, "--output-success-images", success)
		for _, s := range []*registrytest.Registry{a.s1, a.s2} {
			if n := s.Log.Count("GET", "/(blobs|manifests)/"); n != 0 {
				t.Errorf("the second export downloaded %d manifests or blobs from %s", n, s.Host)
			}
		}
		t.Logf("second export: %d requests in all (pings, tag lists, one HEAD per source image)", rep.Summary.Requests)
		if r.code != 0 || rep.Summary.Skipped != 2*len(a.want) || rep.Summary.Copied != 0 || rep.Summary.BlobsUploaded != 0 {
			t.Fatalf("second export: exit %d, summary %+v", r.code, rep.Summary)
		}
		after := snapshot(t, a.dir)
		delete(before, testLedger(t))
		delete(after, testLedger(t))
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("the second export changed files:\nbefore %v\nafter  %v", before, after)
		}

		// plan and verify --deep see the layouts as destinations.
		for _, rulesFile := range []string{a.export, success} { // the success file is a rule file again
			if p, r := planJSON(t, "--images", rulesFile); r.code != 0 || p.Summary["skip"] != int64(2*len(a.want)) {
				t.Errorf("plan %s: exit %d, %+v", rulesFile, r.code, p.Summary)
			}
		}
		if probs, r := verifyJSON(t, "--images", a.export, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("verify --deep: exit %d, problems %v", r.code, probs)
		}

		// The far side: each form into the fresh registry, paths kept.
		imp := writeFile(t, a.dir, "import.yaml", fmt.Sprintf("oci:%s: %s/dir\noci-archive:%s: %s/tar\n", bundle, a.far.Host, archive, a.far.Host))
		if p, r := planJSON(t, "--images", imp); r.code != 0 || p.Summary["copy"] != int64(2*len(a.want)) || p.Summary["bytes"] == 0 {
			t.Errorf("plan of the import: exit %d, %+v", r.code, p.Summary)
		}
		rep, r = syncJSON(t, "--images", imp)
		if r.code != 0 || rep.Summary.Copied != 2*len(a.want) {
			t.Fatalf("import: exit %d, summary %+v", r.code, rep.Summary)
		}
		for _, prefix := range []string{"dir", "tar"} {
			for name, d := range a.want {
				_, path, _ := strings.Cut(name, "/") // below the source registry
				repo, ref, _ := strings.Cut(path, ":")
				if at := strings.Index(path, "@"); at >= 0 {
					repo, ref = path[:at], path[at+1:]
					if tags := a.far.Tags(t, prefix+"/"+repo); len(tags) != 0 {
						t.Errorf("%s: a digest source must arrive untagged, got %v", name, tags)
					}
				}
				assertDigest(t, a.far, prefix+"/"+repo, ref, d)
			}
		}
		// The index's children came along.
		for _, c := range []string{"dir", "tar"} {
			raw := assertDigest(t, a.far, c+"/lib/multi", "v1", a.want[a.s1.Host+"/lib/multi:v1"])
			var idx ociIndex
			_ = json.Unmarshal(raw, &idx)
			for _, m := range idx.Manifests {
				assertDigest(t, a.far, c+"/lib/multi", m.Digest, m.Digest)
			}
		}
		// verify --deep on the far side: the layouts re-hashed, the registry checked.
		if probs, r := verifyJSON(t, "--images", imp, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("verify --deep of the import: exit %d, problems %v", r.code, probs)
		}
		// --offline compares with the ledger; the layout's names are read from it.
		probs, r := verifyJSON(t, "--images", imp, "--offline")
		var v struct{ Summary struct{ OK int } }
		_ = json.Unmarshal([]byte(r.stdout), &v)
		if r.code != 0 || len(probs) != 0 || v.Summary.OK != 2*len(a.want) {
			t.Errorf("verify --offline of the import: exit %d, %d ok, problems %v", r.code, v.Summary.OK, probs)
		}

		// A layout into another layout: the same names, the same digests.
		other := filepath.Join(a.dir, "other")
		l2l := writeFile(t, a.dir, "l2l.yaml", fmt.Sprintf("oci-archive:%s: oci:%s\n", archive, other))
		if r := runCLI(t, nil, "--images", l2l); r.code != 0 {
			t.Fatalf("layout to layout: exit %d", r.code)
		}
		if got := layoutNames(t, other); fmt.Sprint(got) != fmt.Sprint(a.want) {
			t.Errorf("layout to layout: %v, want %v", got, a.want)
		}
		checkLayoutComplete(t, other, true)

		// One image out of the layout by name.
		one := writeFile(t, a.dir, "one.yaml", fmt.Sprintf("oci:%s:%s/lib/app:1.1: %s/one\noci:%[1]s:%[4]s/team/tool:2.5: %[3]s\n", bundle, a.s1.Host, a.far.Host, a.s2.Host))
		if r := runCLI(t, nil, "--images", one); r.code != 0 {
			t.Fatalf("oci:DIR:REF: exit %d", r.code)
		}
		assertDigest(t, a.far, "team/tool", "2.5", a.want[a.s2.Host+"/team/tool:2.5"]) // a registry alone: the path right below it
		assertDigest(t, a.far, "one/lib/app", "1.1", a.want[a.s1.Host+"/lib/app:1.1"])
		if tags := a.far.Tags(t, "one/lib/app"); len(tags) != 1 {
			t.Errorf("oci:DIR:REF pushed %v, want one tag", tags)
		}
	})
}

// A corrupted blob in a layout: verify --deep names it (export and import
// side), and the import refuses the image: nothing arrives under its tag,
// while the other images go through.
func TestLayoutCorruptBlob(t *testing.T) {
	t.Parallel()
	a := newAirGap(t, registrytest.Distribution3)
	bundle := filepath.Join(a.dir, "bundle")
	if r := runCLI(t, nil, "--images", a.export); r.code != 0 {
		t.Fatalf("export: exit %d", r.code)
	}
	raw, _, _ := a.s2.Manifest(t, "team/tool", "2.5")
	var m ociIndex
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[0].Digest
	p := filepath.Join(bundle, "blobs", "sha256", strings.TrimPrefix(layer, "sha256:"))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // same size, other bytes
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}

	probs, r := verifyJSON(t, "--images", a.export, "--deep")
	toolRef := "oci:" + bundle + ":" + a.s2.Host + "/team/tool:2.5"
	if r.code != 1 || !slices.Equal(probs[toolRef], []string{"corrupt-blob"}) || len(probs) != 1 {
		t.Errorf("verify --deep: exit %d, problems %v; want one corrupt-blob for %s", r.code, probs, toolRef)
	}
	if !strings.Contains(r.stdout, layer) || !strings.Contains(r.stdout, p) {
		t.Errorf("verify does not name the blob %s and its file %s", layer, p)
	}

	imp := writeFile(t, a.dir, "import.yaml", fmt.Sprintf("oci:%s: %s/mirror\n", bundle, a.far.Host))
	probs, r = verifyJSON(t, "--images", imp, "--deep")
	if r.code != 1 || !slices.Contains(probs[a.far.Host+"/mirror/team/tool:2.5"], "corrupt-blob") {
		t.Errorf("verify --deep of the import side: exit %d, problems %v", r.code, probs)
	}

	rep, r := syncJSON(t, "--images", imp, "--retries", "0")
	if r.code != 1 || rep.Summary.Failed != 1 || rep.Summary.Copied != len(a.want)-1 {
		t.Fatalf("import: exit %d, summary %+v; want exactly the corrupt image failed", r.code, rep.Summary)
	}
	for _, j := range rep.Jobs {
		if j.Action == "failed" && (!strings.Contains(j.Error, layer) || !strings.Contains(j.Error, p) || !strings.Contains(j.Source, "team/tool:2.5")) {
			t.Errorf("the failure does not name the image, the blob and its file: %+v", j)
		}
	}
	if tags := a.far.Tags(t, "mirror/team/tool"); len(tags) != 0 {
		t.Errorf("the corrupt image arrived under tags %v", tags)
	}
	if a.far.HasBlob(t, "mirror/team/tool", layer) {
		t.Error("the corrupt layer was committed to the registry")
	}

	// Repair: delete the file verify named and export again; only that
	// image is written again.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if probs, r := verifyJSON(t, "--images", a.export); r.code != 1 || !slices.Equal(probs[toolRef], []string{"missing"}) || !strings.Contains(r.stdout, "blob "+layer+" is missing") {
		t.Errorf("verify after the delete: exit %d, problems %v", r.code, probs)
	}
	rep, r = syncJSON(t, "--images", a.export)
	if r.code != 0 || rep.Summary.Copied != 1 || rep.Summary.BlobsUploaded != 1 {
		t.Fatalf("export after the delete: exit %d, summary %+v; want the one image and its one blob written again", r.code, rep.Summary)
	}
	if probs, r := verifyJSON(t, "--images", a.export, "--deep"); r.code != 0 || len(probs) != 0 {
		t.Errorf("verify --deep after the repair: exit %d, problems %v", r.code, probs)
	}
	if rep, r := syncJSON(t, "--images", imp); r.code != 0 || rep.Summary.Copied != 1 {
		t.Errorf("import after the repair: exit %d, summary %+v", r.code, rep.Summary)
	}
}

// A SIGKILL in the middle of an export leaves a valid layout; the next run
// completes it.
func TestLayoutExportSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	want := map[string]string{}
	var rules strings.Builder
	dir := t.TempDir()
	bundle, archive := filepath.Join(dir, "bundle"), filepath.Join(dir, "bundle.tar")
	for i := range 12 {
		repo := fmt.Sprintf("lib/big%d", i)
		want[src.Host+"/"+repo+":1"], _ = src.PushRandomImage(t, repo, "1", linuxAmd64, 2, 1<<20, i%2 == 0, int64(800+i))
		fmt.Fprintf(&rules, "%s/%s:1: [oci:%s, oci-archive:%s]\n", src.Host, repo, bundle, archive)
	}
	images := writeFile(t, dir, "images.yaml", rules.String())
	cmd, stderr := startSlowExport(t, images, dir)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// Some images named, a blob being written.
		b, _ := os.ReadFile(filepath.Join(bundle, "index.json"))
		temps, _ := filepath.Glob(filepath.Join(bundle, "blobs", "sha256", ".tmp-*"))
		if strings.Count(string(b), "org.opencontainers.image.ref.name") >= 3 && len(temps) > 0 {
			break
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("no progress in the layout\n%s", stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL: no cleanup of any kind
	_ = cmd.Wait()

	// Valid now: every image it names is complete, skopeo reads them.
	names := layoutNames(t, bundle)
	if len(names) == 0 || len(names) == len(want) {
		t.Fatalf("killed with %d of %d images in the layout: not mid-run", len(names), len(want))
	}
	t.Logf("killed with %d of %d images in the layout", len(names), len(want))
	checkLayoutComplete(t, bundle, false)
	for name, d := range names {
		if d != want[name] {
			t.Errorf("%s: %s, want %s", name, d, want[name])
		}
	}
	for _, name := range ociTyped(t, bundle) {
		if got := skopeoRaw(t, "oci:"+bundle+":"+name); got != names[name] {
			t.Errorf("skopeo reads %s as %s", name, got)
		}
	}
	if _, err := os.Stat(archive); err == nil {
		t.Error("the archive exists although its run never finished")
	}

	// The next run completes both.
	if r := runCLI(t, nil, "--images", images, "--no-ledger"); r.code != 0 {
		t.Fatalf("second run: exit %d", r.code)
	}
	tarDir := extract(t, archive)
	for _, d := range []string{bundle, tarDir} {
		got := layoutNames(t, d)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s after the second run: %v, want %v", d, got, want)
		}
		checkLayoutComplete(t, d, d == tarDir)
	}
	if _, err := os.Stat(archive + ".partial"); !os.IsNotExist(err) {
		t.Errorf("staging directory left after the second run: %v", err)
	}
}

// Bad layouts are configuration errors naming the path: exit 2, before
// anything is copied.
func TestLayoutBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notLayout := filepath.Join(dir, "notlayout")
	_ = os.MkdirAll(notLayout, 0o755)
	writeFile(t, notLayout, "README", "hello")
	noIndex := filepath.Join(dir, "noindex")
	_ = os.MkdirAll(noIndex, 0o755)
	writeFile(t, noIndex, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	unnamed := filepath.Join(dir, "unnamed")
	_ = os.MkdirAll(unnamed, 0o755)
	writeFile(t, unnamed, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	writeFile(t, unnamed, "index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10}]}`)
	notTar := writeFile(t, dir, "bundle.tar", "not a tar at all, just text that is longer than a tar block would need to be? no")
	for _, tc := range []struct {
		name, rule, want string
	}{
		{"not a layout", "oci:" + notLayout + ": 127.0.0.1:1/x", notLayout + ": not an OCI image layout"},
		{"not a layout as destination", "127.0.0.1:1/a/b:1: oci:" + notLayout, notLayout + ": not an OCI image layout"},
		{"missing", "oci:" + filepath.Join(dir, "nope") + ": 127.0.0.1:1/x", "nope: no such OCI image layout"},
		{"no index.json", "oci:" + noIndex + ": 127.0.0.1:1/x", "index.json is missing"},
		{"unnamed entry", "oci:" + unnamed + ": 127.0.0.1:1/x", "index.json entry 1 (sha256:aaaa"},
		{"not a tar", "oci-archive:" + notTar + ": 127.0.0.1:1/x", notTar + ": not a tar archive of an OCI image layout"},
		{"tag on a layout destination", "oci:" + unnamed + ":" + "x.io/a/b:1: 127.0.0.1:1/x:2", "keep their names below the destination repository"},
		{"name on a layout destination", "127.0.0.1:1/a/b:1: oci:" + notLayout + ":x.io/a/b:1", "a layout destination takes no image name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%q: %q\n", strings.SplitN(tc.rule, ": ", 2)[0], strings.SplitN(tc.rule, ": ", 2)[1]))
			for _, cmd := range []string{"sync", "plan", "verify"} {
				r := runCLI(t, nil, cmd, "--images", images)
				if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "images.yaml") {
					t.Errorf("%s: exit %d, want %d and an error naming the file and containing %q", cmd, r.code, exitUsage, tc.want)
				}
			}
		})
	}
}

// A platform filter applies on the way into a layout as into a registry:
// the layout holds the filtered index (a new digest) and only the matching
// image; the far side receives exactly that.
func TestLayoutPlatformFilter(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	far := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	arm := registrytest.Platform{OS: "linux", Arch: "arm64"}
	idx, _, children := src.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{linuxAmd64, arm}, true, 90)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	export := writeFile(t, dir, "export.yaml", fmt.Sprintf("%s/lib/multi:v1: oci:%s\n", src.Host, bundle))
	if r := runCLI(t, nil, "--images", export, "--arch", "arm64"); r.code != 0 {
		t.Fatalf("export: exit %d", r.code)
	}
	name := src.Host + "/lib/multi:v1"
	filtered := layoutNames(t, bundle)[name]
	if filtered == "" || filtered == idx {
		t.Fatalf("%s in the layout is %q; want a filtered index, not %s", name, filtered, idx)
	}
	checkLayoutComplete(t, bundle, true)
	raw := readFile(t, filepath.Join(bundle, "blobs", "sha256", strings.TrimPrefix(filtered, "sha256:")))
	var got ociIndex
	_ = json.Unmarshal([]byte(raw), &got)
	if len(got.Manifests) != 1 || got.Manifests[0].Digest != children[1] {
		t.Fatalf("filtered index holds %+v, want only the arm64 image %s", got.Manifests, children[1])
	}
	if _, err := os.Stat(filepath.Join(bundle, "blobs", "sha256", strings.TrimPrefix(children[0], "sha256:"))); !os.IsNotExist(err) {
		t.Error("the amd64 image was written although filtered out")
	}
	if probs, r := verifyJSON(t, "--images", export, "--arch", "arm64", "--deep"); r.code != 0 || len(probs) != 0 {
		t.Errorf("verify: exit %d, problems %v", r.code, probs)
	}
	imp := writeFile(t, dir, "import.yaml", fmt.Sprintf("oci:%s: %s/mirror\n", bundle, far.Host))
	if r := runCLI(t, nil, "--images", imp); r.code != 0 {
		t.Fatalf("import: exit %d", r.code)
	}
	assertDigest(t, far, "mirror/lib/multi", "v1", filtered)
}

// Ctrl-C during an export into an archive: the images in flight finish, and
// the archive is written with every image completed, nothing half.
func TestLayoutArchiveInterrupted(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	want := map[string]string{}
	var rules strings.Builder
	dir := t.TempDir()
	archive := filepath.Join(dir, "bundle.tar")
	for i := range 12 {
		repo := fmt.Sprintf("lib/big%d", i)
		want[src.Host+"/"+repo+":1"], _ = src.PushRandomImage(t, repo, "1", linuxAmd64, 2, 1<<20, true, int64(700+i))
		fmt.Fprintf(&rules, "%s/%s:1: oci-archive:%s\n", src.Host, repo, archive)
	}
	images := writeFile(t, dir, "images.yaml", rules.String())
	cmd, stderr := startSlowExport(t, images, dir)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(filepath.Join(archive+".partial", "index.json"))
		if strings.Count(string(b), "org.opencontainers.image.ref.name") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress in the staging directory\n%s", stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, stderr.String())
	}
	if _, err := os.Stat(archive + ".partial"); !os.IsNotExist(err) {
		t.Errorf("staging directory left after an interrupted run: %v", err)
	}
	tarDir := extract(t, archive)
	names := layoutNames(t, tarDir)
	if len(names) < 3 || len(names) == len(want) {
		t.Fatalf("the archive holds %d of %d images: not an interrupted run", len(names), len(want))
	}
	t.Logf("interrupted with %d of %d images in the archive", len(names), len(want))
	for name, d := range names {
		if want[name] != d {
			t.Errorf("%s: %s, want %s", name, d, want[name])
		}
	}
	checkLayoutComplete(t, tarDir, true)
}

// A layout another tool wrote (skopeo: a full reference as the name, and a
// bare tag) imports, digests kept.
func TestLayoutFromSkopeo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	sk := skopeo(t)
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	far := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	want, _ := src.PushRandomImage(t, "lib/app", "1.0", linuxAmd64, 2, 2000, true, 95)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	for _, name := range []string{src.Host + "/lib/app:1.0", "latest"} {
		cmd := exec.Command(sk, "copy", "--src-tls-verify=false", "docker://"+src.Host+"/lib/app:1.0", "oci:"+bundle+":"+name)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
	}
	names := layoutNames(t, bundle)
	if names[src.Host+"/lib/app:1.0"] != want || names["latest"] != want {
		t.Fatalf("skopeo wrote %v, want %s for both names", names, want)
	}
	imp := writeFile(t, dir, "import.yaml", fmt.Sprintf("oci:%s: %s/mirror\n", bundle, far.Host))
	if r := runCLI(t, nil, "--images", imp); r.code != 0 {
		t.Fatalf("import: exit %d", r.code)
	}
	assertDigest(t, far, "mirror/lib/app", "1.0", want)
	assertDigest(t, far, "mirror", "latest", want)
}

// --skip-invalid-rules sets a rule with a bad layout aside and runs the rest.
func TestLayoutSkipInvalidRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	d := handLayout(t, good, "x.io/a/b:1")
	bad := filepath.Join(dir, "bad")
	_ = os.MkdirAll(bad, 0o755)
	writeFile(t, bad, "README", "not a layout")
	out := filepath.Join(dir, "out")
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("oci:%s: oci:%s\noci:%s: oci:%s\n", bad, out, good, out))
	if r := runCLI(t, nil, "--images", images); r.code != exitUsage {
		t.Fatalf("strict: exit %d, want %d", r.code, exitUsage)
	}
	r := runCLI(t, nil, "--images", images, "--skip-invalid-rules")
	if r.code != exitSomeFail || !strings.Contains(r.stderr, "images.yaml:1:") || !strings.Contains(r.stderr, bad+": not an OCI image layout") {
		t.Fatalf("--skip-invalid-rules: exit %d, want %d and the bad layout named", r.code, exitSomeFail)
	}
	if got := layoutNames(t, out); got["x.io/a/b:1"] != d || len(got) != 1 {
		t.Fatalf("the good rule's layout: %v", got)
	}
	checkLayoutComplete(t, out, true)
}

// platform-mode keep-index would name an index without its children: refused
// for a layout destination before anything is copied.
func TestLayoutRefusesKeepIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("127.0.0.1:1/a/b:1: oci:%s\n", filepath.Join(dir, "bundle")))
	r := runCLI(t, nil, "--images", images, "--platform", "linux/amd64", "--platform-mode", "keep-index")
	if r.code != exitUsage || !strings.Contains(r.stderr, "images.yaml:1") || !strings.Contains(r.stderr, "cannot write into an image layout") {
		t.Fatalf("exit %d, want %d and the rule named", r.code, exitUsage)
	}
}

// startSlowExport starts imagesync as its own process on the rule file,
// one image at a time, so that a test can kill it mid-way.
func startSlowExport(t *testing.T, images, home string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--images", images, "--no-ledger", "--proc", "1")
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}
