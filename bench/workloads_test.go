//go:build bench

package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// workload is one of the workloads: what is seeded into the source
// and which tools and modes run on it.
type workload struct {
	name  string // "W1"
	desc  string
	seed  func(t testing.TB, src *registrytest.Registry) []image
	heavy bool // only imagesync, regsync and the floor (crane's one process per image is too slow)
	noop  bool // also measure a no-op re-run
	wan   bool // also run across a far link (BENCH_ONLY=wan)
}

var workloads = []workload{
	{
		name: "W1",
		desc: "60 images in 10 repositories: 40 single-platform, 20 two-platform indexes; every image has a 1 MiB base layer shared by all and 3 × 256 KiB own layers",
		seed: seedW1,
		noop: true,
		wan:  true,
	},
	{
		name: "W2",
		desc: "4 images of 3 × 32 MiB layers",
		seed: seedW2,
		wan:  true,
	},
	{
		name:  "W3",
		desc:  "1,000 images of one 4 KiB layer in 50 repositories",
		seed:  seedW3,
		heavy: true,
		noop:  true,
	},
}

// builder pushes hand-made images into a source registry (directly, not
// counted); the same seed gives the same bytes.
type builder struct {
	t   testing.TB
	r   *registrytest.Registry
	rng *rand.ChaCha8
}

func newBuilder(t testing.TB, r *registrytest.Registry, seed uint64) *builder {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &builder{t: t, r: r, rng: rand.NewChaCha8(s)}
}

func (b *builder) random(n int) []byte {
	buf := make([]byte, n)
	_, _ = b.rng.Read(buf)
	return buf
}

// layer is n random bytes, gzipped (as a layer must be: some tools
// compress what does not look compressed, which changes digests).
func (b *builder) layer(n int) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	_, _ = zw.Write(b.random(n))
	_ = zw.Close()
	return out.Bytes()
}

type desc struct {
	MediaType string            `json:"mediaType"`
	Digest    string            `json:"digest"`
	Size      int               `json:"size"`
	Platform  map[string]string `json:"platform,omitempty"`
}

// image pushes config and the given layers (already pushed blobs, or new
// random ones of the sizes in sizes) into repo and returns the manifest
// bytes (OCI image manifest) unpushed.
func (b *builder) image(repo string, shared []desc, sizes []int, arch string, label string) []byte {
	layers := append([]desc(nil), shared...)
	for _, n := range sizes {
		layers = append(layers, b.blob(repo, b.layer(n), "application/vnd.oci.image.layer.v1.tar+gzip"))
	}
	diffIDs := make([]string, len(layers))
	for i := range layers {
		diffIDs[i] = fmt.Sprintf("sha256:%064x", i)
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "config": map[string]any{"Labels": map[string]string{"bench": label}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registrytest.MediaTypeOCIManifest,
		"config": b.blob(repo, cfg, "application/vnd.oci.image.config.v1+json"), "layers": layers})
	return m
}

func (b *builder) blob(repo string, content []byte, mt string) desc {
	return desc{MediaType: mt, Digest: b.r.PushBlob(b.t, repo, content), Size: len(content)}
}

func (b *builder) push(repo, ref string, raw []byte, mt string) string {
	return b.r.PushManifest(b.t, repo, ref, mt, raw)
}

func seedW1(t testing.TB, src *registrytest.Registry) []image {
	b := newBuilder(t, src, 1)
	base := b.layer(1 << 20)
	var imgs []image
	for r := range 10 {
		repo := fmt.Sprintf("w1app%d", r)
		full := srcNS + "/" + repo
		shared := []desc{b.blob(full, base, "application/vnd.oci.image.layer.v1.tar+gzip")}
		for k := 1; k <= 6; k++ {
			tag := fmt.Sprintf("v%d", k)
			label := fmt.Sprintf("%s:%s", repo, tag)
			if k <= 4 {
				raw := b.image(full, shared, []int{256 << 10, 256 << 10, 256 << 10}, "amd64", label)
				imgs = append(imgs, image{repo: repo, tag: tag, digest: b.push(full, tag, raw, registrytest.MediaTypeOCIManifest)})
				continue
			}
			var children []desc
			for _, arch := range []string{"amd64", "arm64"} {
				raw := b.image(full, shared, []int{256 << 10, 256 << 10, 256 << 10}, arch, label+"/"+arch)
				d := b.push(full, registrytest.Digest(raw), raw, registrytest.MediaTypeOCIManifest)
				children = append(children, desc{MediaType: registrytest.MediaTypeOCIManifest, Digest: d, Size: len(raw), Platform: map[string]string{"os": "linux", "architecture": arch}})
			}
			idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registrytest.MediaTypeOCIIndex, "manifests": children})
			imgs = append(imgs, image{repo: repo, tag: tag, digest: b.push(full, tag, idx, registrytest.MediaTypeOCIIndex)})
		}
	}
	return imgs
}

func seedW2(t testing.TB, src *registrytest.Registry) []image {
	b := newBuilder(t, src, 2)
	var imgs []image
	for r := range 4 {
		repo := fmt.Sprintf("w2big%d", r)
		raw := b.image(srcNS+"/"+repo, nil, []int{32 << 20, 32 << 20, 32 << 20}, "amd64", repo)
		imgs = append(imgs, image{repo: repo, tag: "v1", digest: b.push(srcNS+"/"+repo, "v1", raw, registrytest.MediaTypeOCIManifest)})
	}
	return imgs
}

func seedW3(t testing.TB, src *registrytest.Registry) []image {
	b := newBuilder(t, src, 3)
	var imgs []image
	for r := range 50 {
		repo := fmt.Sprintf("w3small%d", r)
		for k := 1; k <= 20; k++ {
			tag := fmt.Sprintf("v%d", k)
			raw := b.image(srcNS+"/"+repo, nil, []int{4 << 10}, "amd64", repo+":"+tag)
			imgs = append(imgs, image{repo: repo, tag: tag, digest: b.push(srcNS+"/"+repo, tag, raw, registrytest.MediaTypeOCIManifest)})
		}
	}
	return imgs
}
