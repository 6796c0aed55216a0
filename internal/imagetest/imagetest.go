// Package imagetest assembles, for tests, the container image a release
// publishes (.goreleaser.yaml, kos): the static imagesync binary at
// /ko-app/imagesync, on PATH and as the entrypoint, over a base layer like
// Chainguard's static image (the CA roots at /etc/ssl/certs/ca-certificates.crt,
// /etc/passwd with the user nonroot 65532, /tmp), run as 65532:65532, with the
// OCI labels and annotations (source, version, revision), one image per
// platform in an OCI index. No Docker daemon and no network: the binary is
// built here (CGO_ENABLED=0) and the image put together with
// go-containerregistry, then pushed to a loopback registry.
//
// It also assembles the pause image a test node's containerd runs as each
// pod's sandbox (Pause), and runs an image's container with runc (Run).
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the release image holds and how it runs (ko's conventions, the
// goreleaser kos settings and the static base image's).
const (
	AppPath    = "/ko-app/imagesync"
	CABundle   = "/etc/ssl/certs/ca-certificates.crt"
	User       = "65532:65532"
	UID        = 65532
	PathEnv    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/ko-app"
	Source     = "https://github.com/imagesync/imagesync"
	LabelSrc   = "org.opencontainers.image.source"
	LabelVer   = "org.opencontainers.image.version"
	LabelRev   = "org.opencontainers.image.revision"
	TestCommit = "0123456789abcdef0123456789abcdef01234567"
)

// Platforms the release publishes.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// RepoRoot is the module's root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("imagetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// GoBuild builds a main package of this module statically (CGO_ENABLED=0)
// for linux/arch into dir and returns the binary's path. The flags are those
// of the cross-compile step of scripts/test.sh, so the compiled packages are
// shared with it through the build cache.
func GoBuild(t testing.TB, dir, pkg, arch string, ldflags string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg)+"-"+arch)
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("imagetest: go build %s for linux/%s: %v\n%s", pkg, arch, err, b)
	}
	return out
}

// Binary builds the static imagesync for linux/arch, as the release does
// (version baked in as "imagetest").
func Binary(t testing.TB, dir, arch string) string {
	t.Helper()
	return GoBuild(t, dir, "./cmd/imagesync", arch, "-X main.version=imagetest -X main.commit="+TestCommit)
}

// File is one entry of a layer.
type File struct {
	Path string // absolute, in the image
	Mode int64  // permission bits; a directory when Dir
	Dir  bool
	Data []byte
	UID  int
}

// Layer makes an uncompressed-tar layer of files (parents first, fixed times).
func Layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	epoch := time.Unix(0, 0)
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, ModTime: epoch, Uid: f.UID, Gid: f.UID, Format: tar.FormatPAX}
		if f.Dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.Dir {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// BaseFiles are the static base image's files: the CA bundle, the users,
// /tmp and nonroot's home.
func BaseFiles(caBundle []byte) []File {
	return []File{
		{Path: "/etc", Mode: 0o755, Dir: true},
		{Path: "/etc/ssl", Mode: 0o755, Dir: true},
		{Path: "/etc/ssl/certs", Mode: 0o755, Dir: true},
		{Path: CABundle, Mode: 0o644, Data: caBundle},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{Path: "/home", Mode: 0o755, Dir: true},
		{Path: "/home/nonroot", Mode: 0o700, Dir: true, UID: UID},
		{Path: "/tmp", Mode: 0o1777, Dir: true},
	}
}

// Spec is what an image is made of.
type Spec struct {
	// Binaries maps an architecture (amd64, arm64) to the static imagesync
	// built for linux/that architecture.
	Binaries map[string]string
	// CABundle is the PEM bundle the base layer carries (the system roots).
	CABundle []byte
	Version  string
	Revision string
}

// Build assembles one image per architecture and the index of them.
func Build(s Spec) (v1.ImageIndex, error) {
	annotations := map[string]string{LabelSrc: Source, LabelVer: s.Version, LabelRev: s.Revision, "org.opencontainers.image.title": "imagesync"}
	base, err := Layer(BaseFiles(s.CABundle))
	if err != nil {
		return nil, err
	}
	archs := make([]string, 0, len(s.Binaries))
	for a := range s.Binaries {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range archs {
		bin, err := os.ReadFile(s.Binaries[arch])
		if err != nil {
			return nil, err
		}
		app, err := Layer([]File{{Path: "/ko-app", Mode: 0o755, Dir: true}, {Path: AppPath, Mode: 0o755, Data: bin}})
		if err != nil {
			return nil, err
		}
		img, err := image([]v1.Layer{base, app}, v1.Config{
			User:       User,
			Entrypoint: []string{AppPath},
			Env:        []string{PathEnv, "SSL_CERT_FILE=" + CABundle, "KO_DATA_PATH=/var/run/ko"},
			WorkingDir: "/",
			Labels:     annotations,
		}, arch)
		if err != nil {
			return nil, err
		}
		img = mutate.Annotations(img, annotations).(v1.Image)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}

func image(layers []v1.Layer, cfg v1.Config, arch string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	return mutate.ConfigFile(img, cf)
}

// SystemRoots is this machine's CA bundle, plus extra PEM certificates.
func SystemRoots(t testing.TB, extra ...[]byte) []byte {
	t.Helper()
	b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Logf("imagetest: no system CA bundle (%v): the image's holds only the test CAs", err)
	}
	for _, e := range extra {
		b = append(append(b, '\n'), e...)
	}
	return b
}

// Push writes the index to ref in a plain-HTTP loopback registry.
func Push(ctx context.Context, ref string, idx v1.ImageIndex) (v1.Hash, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithTransport(http.DefaultTransport)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return idx.Digest()
}

// PushImage writes one image to ref in a plain-HTTP loopback registry.
func PushImage(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithTransport(http.DefaultTransport)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return img.Digest()
}

// Pause builds the pause program (./internal/imagetest/pause: blocks until
// SIGTERM or SIGINT) and makes the one-layer image a node's containerd runs
// as each pod's sandbox.
func Pause(t testing.TB, dir string) v1.Image {
	t.Helper()
	bin := GoBuild(t, dir, "./internal/imagetest/pause", runtime.GOARCH, "-s -w")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Layer([]File{{Path: "/pause", Mode: 0o755, Data: b}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := image([]v1.Layer{l}, v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
