package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestConvertPlansTheSameJobs: the config file convert prints, run through
// plan, yields the same jobs (and decisions) as the image-syncer files.
func TestConvertPlansTheSameJobs(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{Htpasswd: map[string]string{"robot": "conv-s3cret"}})
		linux := registrytest.Platform{OS: "linux", Arch: "amd64"}
		digests := map[string]string{}
		for i, tag := range []string{"3.18", "3.19", "3.20", "edge"} {
			digests[tag], _ = src.PushRandomImage(t, "lib/alpine", tag, linux, 1, 256, false, int64(60+i))
		}
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf(`$SRC/lib/alpine: $DST/mirror/alpine
$SRC/lib/alpine:3.19: [$DST/a/alpine, "${DST}/b/alpine:stable"]
$SRC/lib/alpine:/^3\.(18|20)$/: $DST/regex/alpine
$SRC/lib/alpine@%s: $DST/pinned/alpine
$SRC/lib/alpine:edge: ""
`, digests["3.18"]))
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s:\n  username: robot\n  password: ${DST_PASS}\n", dst.Host))
		envs := map[string]string{"SRC": src.Host, "DST": dst.Host, "DST_PASS": "conv-s3cret", "DEFAULT_REGISTRY": dst.Host, "DEFAULT_NAMESPACE": "default"}

		r := runCLI(t, envs, "convert", "--images", images, "--auth", auth)
		if r.code != 0 {
			t.Fatalf("convert exit %d", r.code)
		}
		if strings.Contains(r.stdout, "conv-s3cret") {
			t.Fatal("convert copied a secret")
		}
		if err := validateYAML(compileSchema(t), []byte(r.stdout)); err != nil {
			t.Errorf("convert output does not match the schema: %v", err)
		}
		native := writeFile(t, t.TempDir(), "imagesync.yaml", r.stdout)

		plan := func(args ...string) []string {
			t.Helper()
			r := runCLI(t, envs, append([]string{"plan", "-o", "json", "--no-ledger"}, args...)...)
			if r.code != 0 {
				t.Fatalf("plan exit %d", r.code)
			}
			var p struct {
				Jobs []struct{ Source, Destination, Action, Digest string }
			}
			if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, j := range p.Jobs {
				out = append(out, j.Source+" → "+j.Destination+" "+j.Action+" "+j.Digest)
			}
			slices.Sort(out)
			return out
		}
		want := plan("--images", images, "--auth", auth)
		if len(want) != 4+2+2+1+1 {
			t.Fatalf("the image-syncer files plan %d jobs: %v", len(want), want)
		}
		if got := plan("-f", native); !slices.Equal(got, want) {
			t.Errorf("converted plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		// image-syncer's legacy file (auth: and images: in one) converts too.
		legacy := writeFile(t, dir, "config.yaml", "auth:\n  "+strings.ReplaceAll(readFile(t, auth), "\n", "\n  ")+"\nimages:\n  "+strings.ReplaceAll(readFile(t, images), "\n", "\n  ")+"\n")
		r = runCLI(t, envs, "convert", "--config", legacy)
		if r.code != 0 || strings.Contains(r.stdout, "conv-s3cret") {
			t.Fatalf("convert --config exit %d", r.code)
		}
		native2 := writeFile(t, t.TempDir(), "imagesync.yaml", r.stdout)
		if got := plan("-f", native2); !slices.Equal(got, want) {
			t.Errorf("converted legacy plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
