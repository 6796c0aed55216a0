package registrytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Manifest media types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"

	mediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeOCIConfig    = "application/vnd.oci.image.config.v1+json"
	mediaTypeOCILayer     = "application/vnd.oci.image.layer.v1.tar+gzip"

	// IndexArtifactType is the "artifactType" PushIndex writes into OCI indexes.
	IndexArtifactType = "application/vnd.imagesync.test.index.v1"
)

// AcceptManifests is an Accept header value listing all four manifest media types.
var AcceptManifests = strings.Join([]string{MediaTypeOCIIndex, MediaTypeOCIManifest, MediaTypeDockerManifestList, MediaTypeDockerManifest}, ", ")

// Platform of an image.
type Platform struct{ OS, Arch, Variant, OSVersion string }

// Digest returns the "sha256:…" digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// do sends a request to the server directly (not via the proxy), with the
// configured credentials. target is a path ("/v2/…") or an absolute URL.
func (r *Registry) do(t testing.TB, method, target string, hdr http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	u := target
	if strings.HasPrefix(target, "/") {
		u = r.Scheme() + "://" + r.Direct + target
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatalf("registrytest: %s %s: %v", method, u, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	if r.tokens != nil {
		req.Header.Set("Authorization", "Bearer "+r.tokens.seedToken(req.URL.Path))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("registrytest: %s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("registrytest: %s %s: read body: %v", method, u, err)
	}
	return resp, b
}

func (r *Registry) expect(t testing.TB, resp *http.Response, body []byte, want ...int) {
	t.Helper()
	for _, w := range want {
		if resp.StatusCode == w {
			return
		}
	}
	t.Fatalf("registrytest: %s %s (%s): status %d, want %v: %s",
		resp.Request.Method, resp.Request.URL, r.Kind, resp.StatusCode, want, bytes.TrimSpace(body))
}

// PushBlob uploads content (POST + monolithic PUT) to Direct and returns its
// digest "sha256:…".
func (r *Registry) PushBlob(t testing.TB, repo string, content []byte) string {
	t.Helper()
	dgst := Digest(content)
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, body := r.do(t, http.MethodPut, r.uploadURL(t, repo, dgst), hdr, content)
	r.expect(t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		t.Fatalf("registrytest: pushed blob %s but registry says %s", dgst, got)
	}
	return dgst
}

// uploadURL opens an upload session in repo and returns the URL that
// closes it with one PUT of the blob digest.
func (r *Registry) uploadURL(t testing.TB, repo, digest string) string {
	t.Helper()
	resp, body := r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	r.expect(t, resp, body, http.StatusAccepted)
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		t.Fatalf("registrytest: upload Location %q: %v", resp.Header.Get("Location"), err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	return loc.String()
}

// PushManifest PUTs the raw bytes with the media type under ref (tag or
// digest) to Direct and returns the digest of the bytes.
func (r *Registry) PushManifest(t testing.TB, repo, ref, mediaType string, raw []byte) string {
	t.Helper()
	dgst := Digest(raw)
	hdr := http.Header{"Content-Type": {mediaType}}
	resp, body := r.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, hdr, raw)
	r.expect(t, resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		t.Fatalf("registrytest: pushed manifest %s but registry says %s", dgst, got)
	}
	return dgst
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

type imageManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	Created      string `json:"created"`
	OS           string `json:"os"`
	OSVersion    string `json:"os.version,omitempty"`
	Variant      string `json:"variant,omitempty"`
	Config       struct {
		Env    []string          `json:"Env"`
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// newRand returns a deterministic random source for seed.
func newRand(seed int64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:8], uint64(seed))
	copy(s[8:], "imagesync/registrytest")
	return rand.NewChaCha8(s)
}

// randomLayer returns a gzip'ed tar with one file of size random bytes and
// the digest of the uncompressed tar (diff_id).
func randomLayer(rng *rand.ChaCha8, name string, size int) (gz []byte, diffID string) {
	data := make([]byte, size)
	_, _ = rng.Read(data)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size), ModTime: fixedTime, Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		panic(err)
	}
	_, _ = tw.Write(data)
	if err := tw.Close(); err != nil {
		panic(err)
	}
	var gb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gb, gzip.BestSpeed)
	_, _ = zw.Write(tb.Bytes())
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return gb.Bytes(), Digest(tb.Bytes())
}

// PushRandomImage pushes a random single-platform image (config with the
// platform, `layers` random gzip layers of ~size bytes each) as a Docker v2
// schema 2 manifest (oci=false) or an OCI image manifest (oci=true) under
// tag, returning the manifest digest and raw bytes. The same seed (and
// arguments) gives the same bytes.
func (r *Registry) PushRandomImage(t testing.TB, repo, tag string, p Platform, layers int, size int, oci bool, seed int64) (digest string, raw []byte) {
	t.Helper()
	raw, mediaType := r.pushImageContent(t, repo, p, layers, size, oci, seed)
	return r.PushManifest(t, repo, tag, mediaType, raw), raw
}

// pushImageContent pushes config and layers and returns the manifest bytes.
func (r *Registry) pushImageContent(t testing.TB, repo string, p Platform, layers, size int, oci bool, seed int64) ([]byte, string) {
	t.Helper()
	rng := newRand(seed)
	mt, cfgMT, layerMT := MediaTypeDockerManifest, mediaTypeDockerConfig, mediaTypeDockerLayer
	if oci {
		mt, cfgMT, layerMT = MediaTypeOCIManifest, mediaTypeOCIConfig, mediaTypeOCILayer
	}
	var cfg imageConfig
	cfg.Architecture, cfg.OS, cfg.OSVersion, cfg.Variant = p.Arch, p.OS, p.OSVersion, p.Variant
	cfg.Created = fixedTime.Format(time.RFC3339)
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Labels = map[string]string{"org.imagesync.test.seed": strconv.FormatInt(seed, 10)}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{}
	m := imageManifest{SchemaVersion: 2, MediaType: mt, Layers: []descriptor{}}
	for i := 0; i < layers; i++ {
		gz, diffID := randomLayer(rng, fmt.Sprintf("layer%d/data.bin", i), size)
		m.Layers = append(m.Layers, descriptor{MediaType: layerMT, Digest: r.PushBlob(t, repo, gz), Size: len(gz)})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = descriptor{MediaType: cfgMT, Digest: r.PushBlob(t, repo, cfgRaw), Size: len(cfgRaw)}
	raw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	return raw, mt
}

func jstr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// PushIndex pushes a multi-platform index: one random image (one small
// layer) per platform, pushed by digest, then the index under tag. The index
// bytes are written by hand with tabs, a non-library key order and a trailing
// newline. For oci=true it is an OCI index with annotations on the index and
// on the first child and an "artifactType" (IndexArtifactType); for
// oci=false a Docker manifest list with an extra unknown top-level field
// ("x-imagesync-unknown"). Returns the index digest, raw bytes and the child
// digests in order.
func (r *Registry) PushIndex(t testing.TB, repo, tag string, platforms []Platform, oci bool, seed int64) (digest string, raw []byte, children []string) {
	t.Helper()
	childMT, indexMT := MediaTypeDockerManifest, MediaTypeDockerManifestList
	if oci {
		childMT, indexMT = MediaTypeOCIManifest, MediaTypeOCIIndex
	}
	var b strings.Builder
	b.WriteString("{\n")
	if oci {
		fmt.Fprintf(&b, "\t\"annotations\" : {\n\t\t\"org.opencontainers.image.created\": %s,\n\t\t\"org.imagesync.test.seed\":\t%s\n\t},\n",
			jstr(fixedTime.Format(time.RFC3339)), jstr(strconv.FormatInt(seed, 10)))
	} else {
		fmt.Fprintf(&b, "\t\"x-imagesync-unknown\": {\"seed\": %d, \"nested\": [1, 2.5, \"three\", null, true]},\n", seed)
	}
	b.WriteString("\t\"manifests\": [")
	for i, p := range platforms {
		childSeed := seed*1_000_003 + int64(i+1)*7_919
		craw, _ := r.pushImageContent(t, repo, p, 1, 512+i, oci, childSeed)
		d := r.PushManifest(t, repo, Digest(craw), childMT, craw)
		children = append(children, d)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n\t\t{\n\t\t\t\"digest\": %s,\n\t\t\t\"size\":\t%d,\n\t\t\t\"mediaType\": %s,\n", jstr(d), len(craw), jstr(childMT))
		fmt.Fprintf(&b, "\t\t\t\"platform\": {\"os\": %s, \"architecture\": %s", jstr(p.OS), jstr(p.Arch))
		if p.Variant != "" {
			fmt.Fprintf(&b, ", \"variant\": %s", jstr(p.Variant))
		}
		if p.OSVersion != "" {
			fmt.Fprintf(&b, ", \"os.version\": %s", jstr(p.OSVersion))
		}
		b.WriteString("}")
		if oci && i == 0 {
			fmt.Fprintf(&b, ",\n\t\t\t\"annotations\": {\"org.imagesync.test.child\": %s}", jstr(strconv.Itoa(i)))
		}
		b.WriteString("\n\t\t}")
	}
	b.WriteString("\n\t],\n")
	if oci {
		fmt.Fprintf(&b, "\t\"artifactType\": %s,\n", jstr(IndexArtifactType))
	}
	fmt.Fprintf(&b, "\t\"mediaType\":%s,\n\t\"schemaVersion\": 2\n}\n", jstr(indexMT))
	raw = []byte(b.String())
	if !json.Valid(raw) {
		t.Fatalf("registrytest: generated invalid index JSON:\n%s", raw)
	}
	return r.PushManifest(t, repo, tag, indexMT, raw), raw, children
}

// Manifest GETs ref from Direct accepting all four manifest media types and
// returns the raw bytes, the Content-Type and the Docker-Content-Digest
// header. It fails the test on a non-200 answer.
func (r *Registry) Manifest(t testing.TB, repo, ref string) (raw []byte, mediaType, digest string) {
	t.Helper()
	resp, body := r.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {AcceptManifests}}, nil)
	r.expect(t, resp, body, http.StatusOK)
	return body, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest")
}

// HasBlob reports whether HEAD on the blob answers 200 (false on 404).
func (r *Registry) HasBlob(t testing.TB, repo, digest string) bool {
	t.Helper()
	resp, body := r.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+digest, nil, nil)
	r.expect(t, resp, body, http.StatusOK, http.StatusNotFound)
	return resp.StatusCode == http.StatusOK
}

// HasManifest reports whether HEAD on the manifest (tag or digest) answers
// 200 (false on 404).
func (r *Registry) HasManifest(t testing.TB, repo, ref string) bool {
	t.Helper()
	resp, body := r.do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {AcceptManifests}}, nil)
	r.expect(t, resp, body, http.StatusOK, http.StatusNotFound)
	return resp.StatusCode == http.StatusOK
}

// Tags lists the tags of repo (following pagination); nil if the repository
// does not exist.
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	var tags []string
	next := "/v2/" + repo + "/tags/list"
	for next != "" {
		resp, body := r.do(t, http.MethodGet, next, nil, nil)
		if resp.StatusCode == http.StatusNotFound && tags == nil {
			return nil
		}
		r.expect(t, resp, body, http.StatusOK)
		var list struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("registrytest: tags list of %s: %v: %s", repo, err, body)
		}
		tags = append(tags, list.Tags...)
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			if i, j := strings.Index(link, "<"), strings.Index(link, ">"); i >= 0 && j > i {
				u, err := resp.Request.URL.Parse(link[i+1 : j])
				if err != nil {
					t.Fatalf("registrytest: bad Link header %q: %v", link, err)
				}
				next = u.String()
			}
		}
	}
	if tags == nil {
		tags = []string{}
	}
	return tags
}

// DeleteManifest deletes the manifest by digest (expects 202).
func (r *Registry) DeleteManifest(t testing.TB, repo, digest string) {
	t.Helper()
	resp, body := r.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+digest, nil, nil)
	r.expect(t, resp, body, http.StatusAccepted)
}

// DeleteBlob deletes the blob link from repo (expects 202).
func (r *Registry) DeleteBlob(t testing.TB, repo, digest string) {
	t.Helper()
	resp, body := r.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+digest, nil, nil)
	r.expect(t, resp, body, http.StatusAccepted)
}
