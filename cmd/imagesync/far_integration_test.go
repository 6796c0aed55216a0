package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// farImages pushes repos × tags images that share one base layer, each with
// two layers of its own, and returns their digests by "repo:tag".
func farImages(t *testing.T, src *registrytest.Registry, repos, tags int) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 27))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	base := random(64 << 10)
	out := map[string]string{}
	for r := range repos {
		repo := fmt.Sprintf("far/app%d", r)
		shared := desc{"application/vnd.oci.image.layer.v1.tar", src.PushBlob(t, repo, base), len(base)}
		for k := range tags {
			layers := []desc{shared}
			for range 2 {
				b := random(32 << 10)
				layers = append(layers, desc{"application/vnd.oci.image.layer.v1.tar", src.PushBlob(t, repo, b), len(b)})
			}
			cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers"}, "n": fmt.Sprint(r, k)})
			m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": registrytest.MediaTypeOCIManifest,
				"config": desc{"application/vnd.oci.image.config.v1+json", src.PushBlob(t, repo, cfg), len(cfg)}, "layers": layers})
			tag := fmt.Sprintf("v%d", k)
			out[repo+":"+tag] = src.PushManifest(t, repo, tag, registrytest.MediaTypeOCIManifest, m)
		}
	}
	return out
}

// Across a far link (each registry behind a proxy that holds every request
// a round trip): every blob is uploaded once, however many repositories
// and jobs need it (the shared layer is mounted, at most once per
// repository), and the source GET of a blob goes out with the upload
// session's POST, not after its answer (--proc 1: one blob at a time, so
// each PUT's session is the destination POST just before it).
func TestFarLinkOverlap(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		const repos, tags = 4, 3
		want := farImages(t, src, repos, tags)
		plan := faultproxy.Plan{RTT: 20 * time.Millisecond}

		t.Run("learned", func(t *testing.T) {
			srcFar, dstFar := faultproxy.Start(t, src.Host, plan), faultproxy.Start(t, dst.Host, plan)
			var rules bytes.Buffer
			for r := range repos {
				fmt.Fprintf(&rules, "%s/far/app%d:v0,v1,v2: %s/learned/app%d\n", srcFar.Host, r, dstFar.Host, r)
			}
			images := filepath.Join(t.TempDir(), "images.yaml")
			if err := os.WriteFile(images, rules.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			dst.Log.Reset()
			if r := runCLI(t, nil, "--images", images, "--no-ledger"); r.code != 0 {
				t.Fatalf("sync: exit %d", r.code)
			}
			for ref, d := range want {
				repo, tag, _ := strings.Cut(ref, ":")
				assertDigest(t, dst, strings.Replace(repo, "far/", "learned/", 1), tag, d)
			}
			for d, n := range uploadsPerDigest(dst) {
				if n != 1 {
					t.Errorf("blob %s uploaded %d times", d, n)
				}
			}
			if n, max := len(uploadsPerDigest(dst)), 1+repos*tags*3; n != max {
				t.Errorf("%d distinct blobs uploaded, want %d (the shared layer once, and each image's config and two layers)", n, max)
			}
			mounts := 0
			for _, q := range dst.Log.All() {
				if q.Method == http.MethodPost && strings.Contains(q.RawQuery, "mount=") && q.Status == http.StatusCreated {
					mounts++
				}
			}
			// the shared layer into each other repository, and one probe
			if mounts > repos {
				t.Errorf("%d mounts answered 201, want at most %d: one per repository that did not upload the shared layer, and the probe", mounts, repos)
			}
		})

		t.Run("GET with POST", func(t *testing.T) {
			// A longer round trip than the other subtest's: the order
			// asserted below must hold with a loaded machine's jitter (a
			// request of this run went out 19 ms late under make test).
			plan := faultproxy.Plan{RTT: 100 * time.Millisecond}
			srcFar, dstFar := faultproxy.Start(t, src.Host, plan), faultproxy.Start(t, dst.Host, plan)
			if r := runCLI(t, nil, srcFar.Host+"/far/app0:v0", dstFar.Host+"/overlap/app0:v0", "--proc", "1", "--no-ledger"); r.code != 0 {
				t.Fatalf("sync: exit %d", r.code)
			}
			assertDigest(t, dst, "overlap/app0", "v0", want["far/app0:v0"])
			gets := map[string]faultproxy.Timed{}
			for _, q := range srcFar.Timeline() {
				if q.Method == http.MethodGet && strings.Contains(q.Path, "/blobs/sha256:") {
					gets[q.Path[strings.LastIndex(q.Path, "/")+1:]] = q
				}
			}
			var session *faultproxy.Timed
			checked := 0
			for _, q := range dstFar.Timeline() {
				switch {
				case q.Method == http.MethodPost && strings.Contains(q.Path, "/blobs/uploads/") && q.Status == http.StatusAccepted:
					session = &q
				case q.Method == http.MethodPut && strings.Contains(q.Path, "/blobs/uploads/"):
					d := strings.Replace(strings.TrimPrefix(q.RawQuery[strings.Index(q.RawQuery, "digest=")+len("digest="):], ""), "%3A", ":", 1)
					d, _, _ = strings.Cut(d, "&")
					get, ok := gets[d]
					if session == nil || !ok {
						t.Fatalf("PUT of %s: no session POST before it, or no source GET (%v)", d, ok)
					}
					if !get.Start.Before(session.Done) {
						t.Errorf("blob %s: the source GET went out at +%v, after its session's POST was answered (+%v)", d, get.Start.Sub(session.Start), session.Done.Sub(session.Start))
					}
					checked++
					session = nil
				}
			}
			if checked != 4 { // config and three layers
				t.Errorf("%d uploads checked, want 4", checked)
			}
			// The destination repository is asked whether it exists as soon
			// as its tag is found missing, with the manifest's GET, not a
			// round trip later, when the first blob is checked.
			var list, manifest *faultproxy.Timed
			for _, q := range dstFar.Timeline() {
				if q.Method == http.MethodGet && strings.HasSuffix(q.Path, "/tags/list") && list == nil {
					list = &q
				}
			}
			for _, q := range srcFar.Timeline() {
				if q.Method == http.MethodGet && strings.Contains(q.Path, "/manifests/") && manifest == nil {
					manifest = &q
				}
			}
			switch {
			case list == nil || manifest == nil:
				t.Errorf("no tag list asked (%v) or no manifest read (%v)", list != nil, manifest != nil)
			case list.Start.Sub(manifest.Start) > plan.RTT*3/4:
				t.Errorf("the tag list went out %v after the manifest's GET, a round trip being %v", list.Start.Sub(manifest.Start), plan.RTT)
			}
		})
	})
}
