package imagetest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestReleaseImage builds the release's image from freshly built static
// binaries (linux/amd64 and linux/arm64), pushes it to a loopback registry
// and inspects what was pushed: the index's platforms, each image's user,
// entrypoint, PATH and labels, the index's annotations, the binary's place
// and mode. Then it runs the image's container with runc as job's pods run
// it (non-root, read-only root, no capabilities): `imagesync` is found on
// PATH, and a sync from a TLS registry whose CA is only in the image's
// system roots succeeds, digest exact; the same image without that CA in
// its roots fails on the certificate, so the roots are what made it work.
func TestReleaseImage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	runc := Runc(t)
	ctx := context.Background()
	node := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	tlsReg := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{TLS: true})
	want, _ := tlsReg.PushRandomImage(t, "src/app", "1", registrytest.Platform{OS: "linux", Arch: "amd64"}, 2, 3000, true, 2601)

	dir := t.TempDir()
	bins := map[string]string{}
	for _, p := range Platforms {
		arch := strings.TrimPrefix(p, "linux/")
		bins[arch] = Binary(t, dir, arch)
	}
	idx, err := Build(Spec{Binaries: bins, CABundle: SystemRoots(t, tlsReg.CAPEM), Version: "1.2.3", Revision: TestCommit})
	if err != nil {
		t.Fatal(err)
	}
	ref := node.Host + "/imagesync/imagesync:1.2.3"
	digest, err := Push(ctx, ref, idx)
	if err != nil {
		t.Fatal(err)
	}

	// What the registry holds, read back.
	r, _ := name.ParseReference(ref, name.Insecure)
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest || desc.MediaType != types.OCIImageIndex {
		t.Fatalf("pushed %s as %s, want %s, an OCI index", desc.Digest, desc.MediaType, digest)
	}
	got, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{LabelSrc, LabelVer, LabelRev} {
		if im.Annotations[k] == "" {
			t.Errorf("index annotation %s missing: %v", k, im.Annotations)
		}
	}
	if im.Annotations[LabelVer] != "1.2.3" || im.Annotations[LabelRev] != TestCommit || im.Annotations[LabelSrc] != Source {
		t.Errorf("index annotations %v", im.Annotations)
	}
	var platforms []string
	var amd64 v1.Image
	for _, m := range im.Manifests {
		p := m.Platform.OS + "/" + m.Platform.Architecture
		platforms = append(platforms, p)
		img, err := got.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if c.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", p, c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/ko-app/imagesync"}) {
			t.Errorf("%s: entrypoint %q", p, c.Entrypoint)
		}
		if !slices.Contains(c.Env, PathEnv) || !strings.Contains(PathEnv, ":/ko-app") {
			t.Errorf("%s: env %q lacks /ko-app on PATH", p, c.Env)
		}
		if c.Labels[LabelSrc] != Source || c.Labels[LabelVer] != "1.2.3" || c.Labels[LabelRev] != TestCommit {
			t.Errorf("%s: labels %v", p, c.Labels)
		}
		if m.Platform.Architecture == "amd64" {
			amd64 = img
		}
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, Platforms) {
		t.Errorf("platforms %v, want %v", platforms, Platforms)
	}
	if amd64 == nil {
		t.Fatal("no linux/amd64 image")
	}

	// job's pods run the command "imagesync": it must be on the image's PATH.
	if res := Run(t, runc, amd64, []string{"imagesync", "version"}); res.Code != 0 || !strings.Contains(res.Stdout+res.Stderr, "imagetest") {
		t.Fatalf("imagesync version in the container: exit %d", res.Code)
	}
	// A copy over TLS, as user 65532 (from the image's config), the CA only in the image's roots.
	sync := []string{"imagesync", "sync", "--no-progress", "--retries", "0", "-o", "json",
		tlsReg.Host + "/src/app:1", tlsReg.Host + "/dst/app"}
	res := Run(t, runc, amd64, sync, "HOME=/tmp")
	if res.Code != 0 {
		t.Fatalf("sync over TLS with the CA in the image's system roots: exit %d", res.Code)
	}
	var rep struct {
		Summary struct{ Copied int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil || rep.Summary.Copied != 1 {
		t.Errorf("sync -o json in the container: %v, copied %d", err, rep.Summary.Copied)
	}
	if _, _, d := tlsReg.Manifest(t, "dst/app", "1"); d != want {
		t.Errorf("dst/app:1 is %s, want %s", d, want)
	}

	// Control: the same binary over roots without the test CA fails on the certificate.
	without, err := Build(Spec{Binaries: map[string]string{"amd64": bins["amd64"]}, CABundle: SystemRoots(t), Version: "1.2.3", Revision: TestCommit})
	if err != nil {
		t.Fatal(err)
	}
	wm, _ := without.IndexManifest()
	wimg, err := without.Image(wm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	sync[len(sync)-1] = tlsReg.Host + "/dst/other"
	res = Run(t, runc, wimg, sync, "HOME=/tmp")
	if res.Code == 0 || !strings.Contains(res.Stdout+res.Stderr, "certificate") {
		t.Errorf("sync without the CA in the system roots: exit %d, want a certificate error", res.Code)
	}
}
