package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

func putRaw(t *testing.T, host, repo, ref string, mediaType types.MediaType, raw []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mediaType))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %v %v", ref, resp, err)
	}
	resp.Body.Close()
	return client.Digest(raw)
}

func putBlob(t *testing.T, host, repo string, b []byte) string {
	t.Helper()
	d := client.Digest(b)
	req, _ := http.NewRequest(http.MethodPost, "http://"+host+"/v2/"+repo+"/blobs/uploads/?digest="+d, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST blob: %v %v", resp, err)
	}
	resp.Body.Close()
	return d
}

// artifact pushes an OCI artifact manifest with a subject and returns its digest.
func artifact(t *testing.T, host, repo, artifactType, subject string, payload string) string {
	empty := putBlob(t, host, repo, []byte("{}"))
	layer := putBlob(t, host, repo, []byte(payload))
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[{"mediaType":"text/plain","digest":%q,"size":%d}],"subject":{"mediaType":%q,"digest":%q,"size":1}}`,
		client.MediaOCIManifest, artifactType, empty, layer, len(payload), client.MediaOCIManifest, subject)
	d := client.Digest([]byte(raw))
	return putRaw(t, host, repo, d, client.MediaOCIManifest, []byte(raw))
}

// TestReferrersValidatedAndFiltered: the source's fallback tag index lists a
// real referrer, one whose subject is another image, one with an invalid
// digest and one of an unwanted artifact type: only the real, wanted one is
// copied, and the destination (no referrers API) gets a fallback index
// listing it alone.
func TestReferrersValidatedAndFiltered(t *testing.T) {
	// The source serves a hostile fallback index (a registry would refuse
	// to store it) in front of go-containerregistry's registry.
	var hostile []byte
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostile != nil && r.Method != http.MethodPut && (strings.Contains(r.URL.Path, "/manifests/sha256-") || strings.HasSuffix(r.URL.Path, "/manifests/"+client.Digest(hostile))) {
			w.Header().Set("Content-Type", string(client.MediaOCIIndex))
			w.Header().Set("Docker-Content-Digest", client.Digest(hostile))
			_, _ = w.Write(hostile)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src := strings.TrimPrefix(srv.URL, "http://")
	dst, _ := memRegistry(t)
	ctx := context.Background()
	img, _ := random.Image(256, 1)
	if err := remote.Write(mustRef(t, src+"/ns/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	subject := dg.String()
	other := "sha256:" + strings.Repeat("e", 64)
	good := artifact(t, src, "ns/app", "application/spdx+json", subject, "sbom")
	liar := artifact(t, src, "ns/app", "application/spdx+json", other, "not ours")
	unwanted := artifact(t, src, "ns/app", "application/vnd.example.other", subject, "other")
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1},{"mediaType":%q,"digest":%q,"size":1},{"mediaType":%q,"digest":"sha256:../../../v2/x","size":1},{"mediaType":%q,"digest":%q,"size":1}]}`,
		client.MediaOCIIndex, client.MediaOCIManifest, good, client.MediaOCIManifest, liar, client.MediaOCIManifest, client.MediaOCIManifest, unwanted)
	hostile = []byte(idx)

	r := ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app")
	r.Referrers = &rules.Referrers{ArtifactTypes: []string{"application/spdx+json"}}
	e := newEngine(t, Options{})
	jobs, _, err := e.Expand(ctx, []rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(ctx, jobs, nil)
	if res.Summary.Copied != 2 || res.Summary.Failed != 0 {
		for _, j := range res.Jobs {
			t.Logf("%s %s %v", j.Action, j.Job.Destination, j.Err)
		}
		t.Fatalf("summary %+v, want the image and one referrer copied", res.Summary)
	}
	for d, want := range map[string]bool{good: true, liar: false, unwanted: false} {
		_, err := remote.Head(mustRef(t, dst+"/mirror/app@"+d))
		if (err == nil) != want {
			t.Errorf("referrer %s at the destination: %v, want %v", d, err == nil, want)
		}
	}
	fb, err := remote.Get(mustRef(t, dst+"/mirror/app:"+fallbackTag(subject)))
	if err != nil {
		t.Fatalf("no fallback index at the destination: %v", err)
	}
	if !bytes.Contains(fb.Manifest, []byte(good)) || bytes.Contains(fb.Manifest, []byte(liar)) || bytes.Contains(fb.Manifest, []byte(unwanted)) {
		t.Errorf("destination fallback index: %s", fb.Manifest)
	}
}

// TestFallbackEntryRebuilt: the source's fallback index lists a real
// referrer with a hostile descriptor (a duplicate digest key, a wrong size,
// an injected field, a name annotation); the destination's fallback index
// gets a descriptor rebuilt from the checked manifest.
func TestFallbackEntryRebuilt(t *testing.T) {
	var hostile []byte
	var hostileTag string
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostile != nil && r.Method != http.MethodPut && (strings.HasSuffix(r.URL.Path, "/manifests/"+hostileTag) || strings.HasSuffix(r.URL.Path, "/manifests/"+client.Digest(hostile))) {
			w.Header().Set("Content-Type", string(client.MediaOCIIndex))
			w.Header().Set("Docker-Content-Digest", client.Digest(hostile))
			_, _ = w.Write(hostile)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src := strings.TrimPrefix(srv.URL, "http://")
	dst, _ := memRegistry(t)
	ctx := context.Background()
	img, _ := random.Image(256, 1)
	if err := remote.Write(mustRef(t, src+"/ns/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	subject := dg.String()
	hostileTag = fallbackTag(subject)
	good := artifact(t, src, "ns/app", "application/spdx+json", subject, "sbom")
	other := "sha256:" + strings.Repeat("e", 64)
	hostile = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"digest":%q,"size":999999,"urls":["http://evil.example/x"],"platform":{"os":"evil"},"annotations":{"org.opencontainers.image.ref.name":"pwned","x":"y"}}]}`,
		client.MediaOCIIndex, client.MediaOCIManifest, other, good))

	r := ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app")
	r.Referrers = &rules.Referrers{ArtifactTypes: []string{"application/spdx+json"}}
	e := newEngine(t, Options{})
	jobs, _, err := e.Expand(ctx, []rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.Sync(ctx, jobs, nil); res.Summary.Copied != 2 || res.Summary.Failed != 0 {
		t.Fatalf("summary %+v, want the image and its referrer copied", res.Summary)
	}
	raw, err := remote.Get(mustRef(t, dst+"/mirror/app@"+good))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := remote.Get(mustRef(t, dst+"/mirror/app:"+fallbackTag(subject)))
	if err != nil {
		t.Fatalf("no fallback index at the destination: %v", err)
	}
	want := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"artifactType":"application/spdx+json"}`, client.MediaOCIManifest, good, len(raw.Manifest))
	var idx struct{ Manifests []json.RawMessage }
	if err := json.Unmarshal(fb.Manifest, &idx); err != nil || len(idx.Manifests) != 1 || string(idx.Manifests[0]) != want {
		t.Errorf("destination fallback index %s; want its one entry to be %s", fb.Manifest, want)
	}
}
