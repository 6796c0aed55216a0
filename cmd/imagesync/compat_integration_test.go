package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// image-syncer's spellings against real registries: -p=6/-r=3, --registry
// (or DEFAULT_REGISTRY) without a namespace, --output-images-format yml.
func TestImageSyncerSpellingsSync(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		app, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 700, true, 501)
		tool, _ := src.PushRandomImage(t, "team/tools/cli", "2", linuxAmd64, 1, 700, false, 502)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: \"\"\n%[1]s/team/tools/cli:2: ['']\n", src.Host))
		success := filepath.Join(dir, "success.yml")

		// --registry alone: R/<the source repository path> (image-syncer v1.5).
		r := runCLI(t, nil, "--images", images, "-p=6", "-r=3", "--registry", dst.Host,
			"--output-images-format", "yml", "--output-success-images", success)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "lib/app", "1", app)
		assertDigest(t, dst, "team/tools/cli", "2", tool)
		var ok map[string][]string
		if err := yaml.Unmarshal([]byte(readFile(t, success)), &ok); err != nil || strings.HasPrefix(strings.TrimSpace(readFile(t, success)), "{") {
			t.Fatalf("--output-images-format yml did not write YAML (%v):\n%s", err, readFile(t, success))
		}
		if got := ok[src.Host+"/lib/app:1"]; !slices.Equal(got, []string{dst.Host + "/lib/app:1"}) {
			t.Errorf("success file entry %v", got)
		}

		// DEFAULT_REGISTRY alone does the same; with DEFAULT_NAMESPACE it is
		// v1.4's R/NS/<path after the first component>.
		if r := runCLI(t, map[string]string{"DEFAULT_REGISTRY": dst.Host}, "plan", "--images", images, "-p=2", "--detailed-exitcode"); r.code != 0 ||
			!strings.Contains(r.stdout, dst.Host+"/team/tools/cli:2") {
			t.Errorf("plan with DEFAULT_REGISTRY: exit %d, want 0 with %s/team/tools/cli:2 in sync", r.code, dst.Host)
		}
		r = runCLI(t, map[string]string{"DEFAULT_REGISTRY": dst.Host, "DEFAULT_NAMESPACE": "mirror"}, "--images", images, "-p=1", "-r=0")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/app", "1", app)
		assertDigest(t, dst, "mirror/tools/cli", "2", tool)
	})
}

// --skip-invalid-rules: every invalid rule reported with the strict run's
// message, the valid ones run, exit 1; without it, nothing runs, exit 2.
func TestSkipInvalidRules(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		good, _ := src.PushRandomImage(t, "lib/good", "1", linuxAmd64, 1, 600, true, 511)
		src.PushRandomImage(t, "lib/re", "v1.0", linuxAmd64, 1, 600, true, 512)
		src.PushRandomImage(t, "lib/re", "v1.1", linuxAmd64, 1, 600, true, 513)
		other, _ := src.PushRandomImage(t, "lib/other", "1", linuxAmd64, 1, 600, true, 514)
		src.PushRandomImage(t, "lib/x", "1", linuxAmd64, 1, 600, true, 515)
		src.PushRandomImage(t, "lib/y", "1", linuxAmd64, 1, 600, true, 516)
		dir := t.TempDir()
		S, D := src.Host, dst.Host
		images := writeFile(t, dir, "images.yaml", strings.Join([]string{
			S + "/lib/good:1: " + D + "/m/good",           // 1 valid
			S + "/lib/dup:1: " + D + "/m/dup",             // 2 duplicate key (with 8)
			S + "/lib/env:1: $UNSET_REGISTRY/m/env",       // 3 unset variable
			S + "/lib/count:1,2: " + D + "/m/count:a,b,c", // 4 tag-count mismatch
			S + "/lib/re:/^v1/: " + D + "/m/re:latest",    // 5 two tags matched, one rename (seen after the listing)
			S + "/lib/x:1: " + D + "/m/same:1",            // 6 and 7 write one destination tag
			S + "/lib/y:1: " + D + "/m/same:1",
			S + "/lib/dup:1: " + D + "/m/dup2",                          // 8
			S + "/lib/other:1: [" + D + "/m/other, " + D + "/m/other2]", // 9 valid
		}, "\n")+"\n")
		envs := map[string]string{} // UNSET_REGISTRY stays unset

		// Strict: the whole file refused, nothing sent to the destination.
		r := runCLI(t, envs, "--images", images)
		if r.code != exitUsage || len(dst.Log.All()) != 0 {
			t.Fatalf("strict: exit %d, %d destination requests; want %d and none", r.code, len(dst.Log.All()), exitUsage)
		}
		strictLoad := r.stderr
		// The errors a listing reveals come out once the load errors are gone.
		fixed := writeFile(t, dir, "fixed.yaml", strings.Join([]string{
			S + "/lib/re:/^v1/: " + D + "/m/re:latest",
			S + "/lib/x:1: " + D + "/m/same:1",
			S + "/lib/y:1: " + D + "/m/same:1",
		}, "\n")+"\n")
		r = runCLI(t, envs, "--images", fixed)
		if r.code != exitUsage || len(dst.Log.All()) != 0 {
			t.Fatalf("strict, listing errors: exit %d", r.code)
		}
		strictExpand := strings.ReplaceAll(r.stderr, "fixed.yaml:1:", "images.yaml:5:")
		strictExpand = strings.ReplaceAll(strictExpand, "fixed.yaml:2", "images.yaml:6")
		strictExpand = strings.ReplaceAll(strictExpand, "fixed.yaml:3", "images.yaml:7")

		r = runCLI(t, envs, "--images", images, "--skip-invalid-rules", "-o", "json")
		if r.code != exitSomeFail {
			t.Fatalf("--skip-invalid-rules: exit %d, want %d", r.code, exitSomeFail)
		}
		for _, strict := range []string{strictLoad, strictExpand} {
			for _, line := range strings.Split(strings.TrimSpace(strict), "\n") {
				line = strings.TrimPrefix(line, "imagesync: ")
				if strings.Contains(line, "images.yaml:") && !strings.Contains(r.stderr, line) {
					t.Errorf("--skip-invalid-rules does not report %q", line)
				}
			}
		}
		for _, want := range []string{"images.yaml:2:", "images.yaml:3:", "images.yaml:4:", "images.yaml:5:", "images.yaml:6:", "images.yaml:7:", "images.yaml:8:", "6 invalid rule(s) were skipped"} { // lines 2 and 8 are one key
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		assertDigest(t, dst, "m/good", "1", good)
		assertDigest(t, dst, "m/other", "1", other)
		assertDigest(t, dst, "m/other2", "1", other)
		for _, repo := range []string{"m/dup", "m/dup2", "m/count", "m/re", "m/same"} {
			if n := dst.Log.Count("PUT", "/v2/"+repo+"/manifests/"); n != 0 {
				t.Errorf("%s: a skipped rule wrote %d manifests", repo, n)
			}
		}
		if !strings.Contains(r.stderr, "3 copied") {
			t.Error("the summary does not count the 3 jobs of the valid rules")
		}
		// -o json lists the rules set aside, each with its place.
		var rep struct {
			Jobs         []struct{ Destination string }
			SkippedRules []struct {
				File  string
				Line  int
				Key   string
				Error string
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("-o json: %v\n%s", err, r.stdout)
		}
		lines := map[int]bool{}
		for _, sr := range rep.SkippedRules {
			if sr.File != images || sr.Key == "" || sr.Error == "" {
				t.Errorf("skipped rule without its place or reason: %+v", sr)
			}
			lines[sr.Line] = true
		}
		for _, l := range []int{2, 3, 4, 5, 6, 7} {
			if !lines[l] {
				t.Errorf("-o json skippedRules lacks line %d: %+v", l, rep.SkippedRules)
			}
		}
		if len(rep.Jobs) != 3 {
			t.Errorf("-o json has %d jobs, want the 3 of the valid rules", len(rep.Jobs))
		}
		if r := runCLI(t, envs, "plan", "--images", images, "--skip-invalid-rules", "-o", "json"); r.code != exitSomeFail || !strings.Contains(r.stdout, `"skippedRules"`) {
			t.Errorf("plan -o json --skip-invalid-rules: exit %d, want %d listing skippedRules", r.code, exitSomeFail)
		}

		// plan takes the flag too: the valid rules are in sync, still exit 1.
		if r := runCLI(t, envs, "plan", "--images", images, "--skip-invalid-rules"); r.code != exitSomeFail || strings.Count(r.stdout, "skip") < 3 {
			t.Errorf("plan --skip-invalid-rules: exit %d, want %d with 3 jobs in sync", r.code, exitSomeFail)
		}
		// The legacy config file: a repeated rule key is a rule's problem, a
		// repeated key in auth: still stops the run.
		cfg := writeFile(t, dir, "config.yaml", "auth:\n  "+D+":\n    insecure: true\nimages:\n  "+S+"/lib/good:1: "+D+"/m/good\n  "+S+"/lib/dup:1: "+D+"/m/dup\n  "+S+"/lib/dup:1: "+D+"/m/dup2\n")
		if r := runCLI(t, envs, "plan", "--config", cfg, "--skip-invalid-rules"); r.code != exitSomeFail || !strings.Contains(r.stderr, "config.yaml:7:") || !strings.Contains(r.stdout, D+"/m/good:1") {
			t.Errorf("legacy config: exit %d, want %d reporting line 7 and planning m/good", r.code, exitSomeFail)
		}
		cfg = writeFile(t, dir, "config2.yaml", "auth:\n  "+D+":\n    insecure: true\n    insecure: false\nimages:\n  "+S+"/lib/good:1: "+D+"/m/good\n")
		if r := runCLI(t, envs, "plan", "--config", cfg, "--skip-invalid-rules"); r.code != exitUsage || !strings.Contains(r.stderr, "config2.yaml:4:") {
			t.Errorf("repeated auth field: exit %d, want %d naming line 4", r.code, exitUsage)
		}

		// Nothing valid at all: a configuration error, as without the flag.
		bad := writeFile(t, dir, "bad.yaml", S+"/lib/env:1: $UNSET_REGISTRY/m/env\n")
		if r := runCLI(t, envs, "--images", bad, "--skip-invalid-rules"); r.code != exitUsage || !strings.Contains(r.stderr, "UNSET_REGISTRY") {
			t.Errorf("no valid rule: exit %d, want %d", r.code, exitUsage)
		}
	})
}

// gcr.io and Artifact Registry take a service-account key as basic auth to
// their own token server (username _json_key or _json_key_base64): such a
// key, multi-line JSON included, goes through the auth file and the token
// flow intact and never shows in the output. (image-syncer's _oauth2_ form
// is mapped to _json_key_base64 for *.gcr.io and *.pkg.dev hosts only:
// credentials.TestGoogleServiceAccountForms.)
func TestServiceAccountKeyThroughTokenFlow(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		key := "{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"0123abcd\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvQ==\\n-----END PRIVATE KEY-----\\n\"\n}\n"
		key64 := base64.StdEncoding.EncodeToString([]byte(key))
		src, dst := pair(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{Users: map[string]string{"_json_key": key, "_json_key_base64": key64}}})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 500, true, 521)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: [%[2]s/a/app, %[2]s/b/app]\n", src.Host, dst.Host))
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%[1]s/a:\n  username: _json_key\n  password: ${GCR_KEY}\n%[1]s/b:\n  username: _json_key_base64\n  password: ${GCR_KEY64}\n", dst.Host))
		r := runCLI(t, map[string]string{"GCR_KEY": key, "GCR_KEY64": key64}, "--images", images, "--auth", auth, "--debug", "--no-ledger")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "a/app", "1", d)
		assertDigest(t, dst, "b/app", "1", d)
		users := map[string]bool{}
		for _, tr := range dst.Tokens.All() {
			if tr.Status == 200 {
				users[tr.User] = true
			}
		}
		if !users["_json_key"] || !users["_json_key_base64"] {
			t.Errorf("token server issued tokens to %v, want both key forms", users)
		}
		for _, secret := range []string{key64, "0123abcd", "MIIEvQ=="} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("the key (%q) appears in the output", secret[:4])
			}
		}
	})
}
