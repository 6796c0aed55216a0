package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// apiRegistry is go-containerregistry's registry with the OCI referrers API
// (neither distribution 2.8 nor 3.0 serves it), on loopback.
func apiRegistry(t *testing.T) string {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(t *testing.T, url, accept string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestReferrersSignedAndSBOM: an image signed with cosign, with an SBOM
// attached by oras (itself signed: a referrer of a referrer). Copied with
// referrers, everything arrives; cosign verify passes on the copy; oras
// finds the SBOM through the referrers API where the destination has it and
// through the tag fallback where it does not.
func TestReferrersSignedAndSBOM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers and clients")
	}
	c := newClients(t)
	type server struct {
		name string
		host string
		api  bool
	}
	d2 := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	d3 := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	api := apiRegistry(t)
	for _, tc := range []struct {
		name     string
		src, dst server
	}{
		{"distribution-2.8 to distribution-2.8 (tag fallback)", server{"d2", d2.Host, false}, server{"d2", d2.Host, false}},
		{"distribution-3 to distribution-3 (tag fallback)", server{"d3", d3.Host, false}, server{"d3", d3.Host, false}},
		{"distribution-3 to referrers API", server{"d3", d3.Host, false}, server{"api", api, true}},
		{"referrers API to distribution-3 (tag fallback)", server{"api", api, true}, server{"d3", d3.Host, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "src-" + tc.dst.name + "/app"
			subjectRef := tc.src.host + "/" + repo
			// The subject: an image pushed by us, tagged v1.
			var digest string
			if tc.src.name == "d2" {
				digest, _ = d2.PushRandomImage(t, repo, "v1", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 512, true, 91)
			} else if tc.src.name == "d3" {
				digest, _ = d3.PushRandomImage(t, repo, "v1", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 512, true, 92)
			} else {
				digest = pushViaOras(t, c, tc.src.host+"/"+repo+":v1")
			}
			c.sign(subjectRef + "@" + digest)
			spec := "v1.1-referrers-tag"
			if tc.src.api {
				spec = "v1.1-referrers-api"
			}
			sbom := c.attachSBOM(subjectRef+"@"+digest, spec)
			c.sign(subjectRef + "@" + sbom)

			dstRepo := tc.dst.host + "/mirror-" + tc.src.name + "/app"
			// plan lists the referrers it would copy, each with its subject.
			p := filterPlanJSON(t, "--referrers", subjectRef+":v1", dstRepo)
			rows := map[string]string{}
			for _, j := range p.Jobs {
				rows[j.Subject+" "+j.ArtifactType] = j.Action
			}
			wantRows := map[string]string{" ": "copy", digest + " application/spdx+json": "copy",
				digest + " application/vnd.dev.cosign.artifact.sig.v1+json": "copy", sbom + " application/vnd.dev.cosign.artifact.sig.v1+json": "copy"}
			if fmt.Sprint(rows) != fmt.Sprint(wantRows) {
				t.Errorf("plan rows %v, want %v", rows, wantRows)
			}
			r := runCLI(t, nil, "sync", "--referrers", "-o", "json", subjectRef+":v1", dstRepo)
			if r.code != 0 {
				t.Fatalf("sync exit %d", r.code)
			}
			// Both arrive: cosign verifies the copy of the image and of the SBOM.
			c.verify(dstRepo + "@" + digest)
			c.verify(dstRepo + "@" + sbom)
			// The SBOM is found at the destination, the way it offers referrers.
			dspec := "v1.1-referrers-tag"
			if tc.dst.api {
				dspec = "v1.1-referrers-api"
			}
			if out := c.discover(dstRepo+"@"+digest, dspec); !strings.Contains(out, sbom) {
				t.Errorf("oras discover (%s) at the destination does not list the SBOM %s:\n%s", dspec, sbom, out)
			}
			code, body := get(t, "http://"+dstRepo[:strings.Index(dstRepo, "/")]+"/v2/"+dstRepo[strings.Index(dstRepo, "/")+1:]+"/manifests/"+fallbackTagOf(digest), registrytest.MediaTypeOCIIndex)
			switch {
			case tc.dst.api && code != http.StatusNotFound:
				t.Errorf("a fallback tag was pushed to a registry with the referrers API (%d)", code)
			case !tc.dst.api && (code != http.StatusOK || !bytes.Contains(body, []byte(sbom))):
				t.Errorf("the destination's fallback tag index (%d) does not list the SBOM: %s", code, body)
			}
			// A second run has nothing to copy.
			d2.Log.Reset()
			d3.Log.Reset()
			r = runCLI(t, nil, "sync", "--referrers", "-o", "json", subjectRef+":v1", dstRepo)
			t.Logf("no-op run with referrers: %d requests to distribution-2.8, %d to distribution-3", len(d2.Log.All()), len(d3.Log.All()))
			if r.code != 0 {
				t.Errorf("second run: exit %d", r.code)
			}
			var rep struct {
				Jobs []struct {
					Action, Subject string
					ArtifactType    string `json:"artifactType"`
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, j := range rep.Jobs {
				kinds[fmt.Sprintf("%s/%s", j.ArtifactType, j.Action)]++
			}
			want := map[string]int{"/skipped": 1, "application/spdx+json/skipped": 1, "application/vnd.dev.cosign.artifact.sig.v1+json/skipped": 2}
			if fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Errorf("second run rows %v, want %v", kinds, want)
			}

			// The whole repository (its tags listed): the referrer tags travel
			// with their subject instead of as images of their own, and the
			// listing spares the requests for cosign tags that do not exist.
			allRepo := tc.dst.host + "/all-" + tc.src.name + "/app"
			for run := 1; run <= 2; run++ {
				d2.Log.Reset()
				d3.Log.Reset()
				r := runCLI(t, nil, "sync", "--referrers", "-o", "json", subjectRef, allRepo)
				if r.code != 0 {
					t.Fatalf("sync of the whole repository: exit %d", r.code)
				}
				t.Logf("whole repository, run %d: %d requests to distribution-2.8, %d to distribution-3", run, len(d2.Log.All()), len(d3.Log.All()))
				var rep struct {
					Jobs []struct{ Source, Subject string }
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatal(err)
				}
				images := 0
				for _, j := range rep.Jobs {
					if j.Subject == "" {
						images++
						if !strings.HasSuffix(j.Source, ":v1") {
							t.Errorf("%s copied as an image of its own", j.Source)
						}
					}
				}
				if images != 1 || len(rep.Jobs) != 4 {
					t.Errorf("whole repository: %d rows, %d images; want 4 (the image, its signature, the SBOM and its signature) and 1", len(rep.Jobs), images)
				}
			}
			c.verify(allRepo + "@" + digest)
			if out := c.discover(allRepo+"@"+digest, dspec); !strings.Contains(out, sbom) {
				t.Errorf("whole repository: the SBOM is missing:\n%s", out)
			}

			// Only SBOMs: the signatures stay behind.
			sbomOnly := tc.dst.host + "/sbom-only-" + tc.src.name + "/app"
			if r := runCLI(t, nil, "sync", "--referrers", "--artifact-type", "application/spdx+json", subjectRef+":v1", sbomOnly); r.code != 0 {
				t.Fatalf("sync --artifact-type: exit %d", r.code)
			}
			if out := c.discover(sbomOnly+"@"+digest, dspec); !strings.Contains(out, sbom) {
				t.Errorf("--artifact-type application/spdx+json: the SBOM is missing:\n%s", out)
			}
			host, path, _ := strings.Cut(sbomOnly, "/")
			for _, ref := range []string{fallbackTagOf(digest) + ".sig", fallbackTagOf(sbom) + ".sig"} {
				if code, _ := get(t, "http://"+host+"/v2/"+path+"/manifests/"+ref, ""); code != http.StatusNotFound {
					t.Errorf("--artifact-type application/spdx+json copied the signature %s (%d)", ref, code)
				}
			}
		})
	}
}

// pushViaOras pushes a small artifact as the subject where we have no seeding helper.
func pushViaOras(t *testing.T, c *clients, ref string) string {
	f := filepath.Join(c.home, "payload.txt")
	if err := os.WriteFile(f, []byte("subject "+ref), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.run(c.oras, "push", "--plain-http", "--format", "json", ref, "payload.txt:text/plain")
	var res struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest == "" {
		t.Fatalf("oras push output %q: %v", out, err)
	}
	return res.Digest
}

// TestWhichRegistriesServeReferrers pins down what the referrer tests rely
// on: neither distribution 2.8 nor 3.0 serves the OCI referrers API (their
// tag fallback is tested there), go-containerregistry's registry does (the
// API path is tested there).
func TestWhichRegistriesServeReferrers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	subject := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		name string
		host string
		api  bool
	}{
		{"distribution-2.8", registrytest.Start(t, registrytest.Distribution2, registrytest.Options{}).Host, false},
		{"distribution-3", registrytest.Start(t, registrytest.Distribution3, registrytest.Options{}).Host, false},
		{"go-containerregistry", apiRegistry(t), true},
	} {
		code, body := get(t, "http://"+tc.host+"/v2/any/repo/referrers/"+subject, registrytest.MediaTypeOCIIndex)
		served := code == http.StatusOK || (code == http.StatusNotFound && bytes.Contains(body, []byte("NAME_UNKNOWN")))
		if served != tc.api {
			t.Errorf("%s: referrers API answers %d %q; want served=%v", tc.name, code, bytes.TrimSpace(body), tc.api)
		}
	}
}
