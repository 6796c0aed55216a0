package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/imagesync/imagesync/internal/registrytest"
)

func TestSyncEveryRuleForm(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		linux := func(arch string) registrytest.Platform { return registrytest.Platform{OS: "linux", Arch: arch} }
		alpine := map[string]string{}
		for i, tag := range []string{"3.18", "3.19", "3.20", "edge"} {
			alpine[tag], _ = src.PushRandomImage(t, "lib/alpine", tag, linux("amd64"), 2, 2048, false, int64(10+i))
		}
		app := map[string]string{}
		for i, tag := range []string{"1.0", "1.1", "2.0"} {
			app[tag], _ = src.PushRandomImage(t, "lib/app", tag, linux("amd64"), 1, 1024, i%2 == 0, int64(20+i))
		}
		ociIdx, ociRaw, ociChildren := src.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{linux("amd64"), linux("arm64"), {OS: "linux", Arch: "arm", Variant: "v7"}}, true, 30)
		dockIdx, dockRaw, _ := src.PushIndex(t, "lib/multi", "v1-docker", []registrytest.Platform{linux("amd64"), linux("arm64")}, false, 31)

		S, D := src.Host, dst.Host
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf(`# every source and destination form of image-syncer
%[1]s/lib/alpine: %[2]s/all/alpine
%[1]s/lib/app:1.0: %[2]s/single/app
"%[1]s/lib/app:1.0, 1.1": %[2]s/renamed/app:a,b
"%[1]s/lib/app:/^1\\./": %[2]s/regex/app
%[1]s/lib/app@%[3]s: %[2]s/bydigest/app
%[1]s/lib/app:2.0: %[2]s/renamed1/app:latest
%[1]s/lib/multi:v1:
  - %[2]s/multi/oci
  - %[2]s/multi2/oci
%[1]s/lib/multi:v1-docker: ${DST}/multi/docker
%[1]s/lib/app:1.1: ""
`, S, D, app["2.0"]))
		envs := map[string]string{"DST": D, "DEFAULT_REGISTRY": D, "DEFAULT_NAMESPACE": "defns"}
		success := filepath.Join(dir, "success.yaml")
		r := runCLI(t, envs, "--images", images, "--proc", "4", "--output-success-images", success)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}

		// Every destination holds the source's digest.
		for tag, d := range alpine {
			assertDigest(t, dst, "all/alpine", tag, d)
		}
		if got := dst.Tags(t, "all/alpine"); len(got) != 4 {
			t.Errorf("all tags: got %v", got)
		}
		assertDigest(t, dst, "single/app", "1.0", app["1.0"])
		assertDigest(t, dst, "renamed/app", "a", app["1.0"])
		assertDigest(t, dst, "renamed/app", "b", app["1.1"])
		assertDigest(t, dst, "regex/app", "1.0", app["1.0"])
		assertDigest(t, dst, "regex/app", "1.1", app["1.1"])
		if got := dst.Tags(t, "regex/app"); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"1.0", "1.1"}) {
			t.Errorf("regex tags: got %v, want [1.0 1.1]", got)
		}
		assertDigest(t, dst, "bydigest/app", app["2.0"], app["2.0"])
		if got := dst.Tags(t, "bydigest/app"); len(got) != 0 {
			t.Errorf("a digest source must be pushed untagged, got tags %v", got)
		}
		assertDigest(t, dst, "renamed1/app", "latest", app["2.0"])
		assertDigest(t, dst, "defns/app", "1.1", app["1.1"])

		// Indexes keep their exact bytes, fields the libraries don't model included.
		for _, repo := range []string{"multi/oci", "multi2/oci"} {
			if raw := assertDigest(t, dst, repo, "v1", ociIdx); string(raw) != string(ociRaw) {
				t.Errorf("%s: index bytes differ", repo)
			}
			for _, c := range ociChildren {
				assertDigest(t, dst, repo, c, c)
			}
		}
		if raw := assertDigest(t, dst, "multi/docker", "v1-docker", dockIdx); string(raw) != string(dockRaw) {
			t.Error("docker manifest list bytes differ")
		}
		if !strings.Contains(string(ociRaw), "artifactType") || !strings.Contains(string(ociRaw), "\t") {
			t.Fatal("the seeded index lacks the unusual fields this test is about")
		}

		// The source of a list destination is read once, not once per
		// destination, and by the digest its HEAD decided (never by tag).
		if n := src.Log.Count("GET", `/v2/lib/multi/manifests/`+regexp.QuoteMeta(ociIdx)+`$`); n != 1 {
			t.Errorf("source index read %d times by digest, want 1", n)
		}
		if n := src.Log.Count("GET", `/v2/lib/multi/manifests/v1$`); n != 0 {
			t.Errorf("source index read %d times by tag, want 0", n)
		}
		// A blob goes up once per registry; the second repository mounts it.
		for d, n := range uploadsPerDigest(dst) {
			if n != 1 {
				t.Errorf("blob %s uploaded %d times", d, n)
			}
		}
		mounts := 0
		for _, q := range dst.Log.All() {
			if q.Method == "POST" && strings.Contains(q.RawQuery, "mount=") && q.Status == 201 {
				mounts++
			}
		}
		// multi2/oci needs the 3 children's configs and layers: 6 blobs.
		if mounts < 6 {
			t.Errorf("%d successful mounts, want at least 6", mounts)
		}

		// The success file has the images-file shape.
		var ok map[string][]string
		if err := yaml.Unmarshal([]byte(readFile(t, success)), &ok); err != nil {
			t.Fatal(err)
		}
		if got := ok[S+"/lib/multi:v1"]; !slices.Equal(got, []string{D + "/multi/oci:v1", D + "/multi2/oci:v1"}) {
			t.Errorf("success file entry: %v", got)
		}

		// A second run copies nothing and reads no manifest or blob.
		src.Log.Reset()
		dst.Log.Reset()
		r = runCLI(t, envs, "--images", images, "--output-success-images", success)
		if r.code != 0 {
			t.Fatalf("second run exit %d", r.code)
		}
		for _, m := range []string{"PUT", "POST", "PATCH", "DELETE"} {
			if n := dst.Log.Count(m, ""); n != 0 {
				t.Errorf("second run: %d %s requests to the destination", n, m)
			}
		}
		if n := src.Log.Count("GET", `/(manifests|blobs)/`); n != 0 {
			t.Errorf("second run: %d manifest/blob GETs on the source", n)
		}
		if n := src.Log.Count("HEAD", `/manifests/`+app["2.0"]); n != 0 {
			t.Errorf("a digest source needs no HEAD, got %d", n)
		}
		if !strings.Contains(r.stderr, "0 copied, 15 skipped") {
			t.Errorf("summary: want 0 copied, 15 skipped")
		}
		ok = nil
		if err := yaml.Unmarshal([]byte(readFile(t, success)), &ok); err != nil {
			t.Fatal(err)
		}
		if n := countValues(ok); n != 15 {
			t.Errorf("success file after a no-op run lists %d images, want 15", n)
		}
	})
}

func countValues(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func TestSyncPlatformFilter(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		plats := []registrytest.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "arm", Variant: "v7"}, {OS: "linux", Arch: "arm", Variant: "v6"}}
		idx, _, children := src.PushIndex(t, "lib/multi", "v1", plats, true, 40)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.json", fmt.Sprintf(`{"%s/lib/multi:v1": "%s/lib/multi"}`, src.Host, dst.Host))

		r := runCLI(t, nil, "--images", images, "--arch", "arm64,arm:v7")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		raw, _, digest := dst.Manifest(t, "lib/multi", "v1")
		if digest == idx {
			t.Fatal("a filtered index must get a new digest")
		}
		if !strings.Contains(r.stderr, digest[:19]) {
			t.Errorf("the report does not show the new digest %s", digest)
		}
		var got struct {
			Manifests []struct {
				Digest   string
				Platform struct{ Architecture, Variant string }
			}
			Annotations map[string]string
		}
		if err := yaml.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Manifests) != 2 || got.Manifests[0].Digest != children[1] || got.Manifests[1].Digest != children[2] {
			t.Fatalf("filtered index children: %+v, want %s and %s", got.Manifests, children[1], children[2])
		}
		if len(got.Annotations) == 0 {
			t.Error("the filtered index lost the index annotations")
		}
		for _, c := range children[1:3] {
			assertDigest(t, dst, "lib/multi", c, c)
		}
		if dst.HasBlob(t, "lib/multi", children[0]) {
			t.Error("unexpected")
		}

		// A filtered no-op re-run: the ledger knows the filtered digest, one
		// HEAD confirms it at the destination, the source index is not read.
		src.Log.Reset()
		dst.Log.Reset()
		if r := runCLI(t, nil, "--images", images, "--arch", "arm64,arm:v7"); r.code != 0 || !strings.Contains(r.stderr, "1 skipped") {
			t.Fatalf("filtered no-op: exit %d", r.code)
		}
		if n := src.Log.Count("GET", "/manifests/"); n != 0 {
			t.Errorf("filtered no-op read %d source manifests", n)
		}
		if n := dst.Log.Count("HEAD", "/manifests/v1$"); n != 1 || dst.Log.Count("HEAD", "") != 1 {
			t.Errorf("filtered no-op: %d destination HEADs of the tag, %d in all; want 1", n, dst.Log.Count("HEAD", ""))
		}

		// No platform matches: reported as filtered, nothing pushed.
		dst.Log.Reset()
		images2 := writeFile(t, dir, "images2.json", fmt.Sprintf(`{"%s/lib/multi:v1": "%s/other/multi"}`, src.Host, dst.Host))
		r = runCLI(t, nil, "--images", images2, "--os", "windows")
		if r.code != 0 || !strings.Contains(r.stderr, "filtered") || !strings.Contains(r.stderr, "1 filtered") {
			t.Fatalf("want a filtered report, exit 0; got %d", r.code)
		}
		if n := dst.Log.Count("PUT", "") + dst.Log.Count("POST", ""); n != 0 {
			t.Errorf("%d writes for a filtered image", n)
		}
	})
}

func TestSyncMissingSourceFailsAlone(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		good, _ := src.PushRandomImage(t, "lib/app", "1.0", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 512, false, 50)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1.0: %[2]s/lib/app\n%[1]s/lib/app:nope: %[2]s/lib/app\n%[1]s/lib/missing: %[2]s/lib/missing\n", src.Host, dst.Host))
		failed := filepath.Join(dir, "failed.json")
		r := runCLI(t, nil, "--images", images, "--retries", "1", "--output-failed-images", failed, "--output-images-format", "json")
		if r.code != exitSomeFail {
			t.Fatalf("exit %d, want %d", r.code, exitSomeFail)
		}
		assertDigest(t, dst, "lib/app", "1.0", good)
		f := readFile(t, failed)
		for _, want := range []string{src.Host + "/lib/app:nope", dst.Host + "/lib/app:nope", "tag nope not found in " + src.Host + "/lib/app", src.Host + "/lib/missing"} {
			if !strings.Contains(f, want) {
				t.Errorf("failed file does not name %q:\n%s", want, f)
			}
		}
		// A 404 is permanent: one HEAD, no retry.
		if n := src.Log.Count("HEAD", `/lib/app/manifests/nope$`); n != 1 {
			t.Errorf("missing tag asked %d times, want 1 (no retry of a 404)", n)
		}
	})
}

func TestSyncAuthFileAndInsecure(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		const password = "s3cret-Pa55word"
		src, dst := pair(t, kind, registrytest.Options{TLS: true, Htpasswd: map[string]string{"robot": password}})
		digest, _ := src.PushRandomImage(t, "lib/app", "1.0", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 512, true, 60)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1.0: %s/team/app\n", src.Host, dst.Host))
		envs := map[string]string{"ROBOT_PW": password}

		// TLS with a CA nobody trusts: refused, and the message says why.
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s/team:\n  username: robot\n  password: ${ROBOT_PW}\n", dst.Host))
		r := runCLI(t, envs, "--images", images, "--auth", auth)
		if r.code != exitAllFailed || !strings.Contains(r.stderr, "certificate") {
			t.Fatalf("untrusted TLS: exit %d, want %d and a certificate error", r.code, exitAllFailed)
		}

		// Wrong password: named registry and auth source, no secret printed.
		auth = writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s/team:\n  username: robot\n  password: wrong-${ROBOT_PW}\n  insecure: true\n", dst.Host))
		r = runCLI(t, envs, "--images", images, "--auth", auth, "--debug")
		if r.code != exitAllFailed || !strings.Contains(r.stderr, dst.Host+"/team/app") || !strings.Contains(r.stderr, `entry "`+dst.Host+`/team"`) {
			t.Fatalf("wrong password: exit %d, want %d naming the registry and the auth entry", r.code, exitAllFailed)
		}
		if strings.Contains(r.stderr+r.stdout, password) {
			t.Fatal("the password appears in the output")
		}

		// Namespace entry with insecure: true: unverified TLS for that prefix only.
		auth = writeFile(t, dir, "auth.yaml", fmt.Sprintf("%[1]s:\n  username: nobody\n  password: nothing\n%[1]s/team:\n  username: robot\n  password: ${ROBOT_PW}\n  insecure: true\n", dst.Host))
		r = runCLI(t, envs, "--images", images, "--auth", auth, "--debug")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "team/app", "1.0", digest)
		if strings.Contains(r.stderr+r.stdout, password) {
			t.Fatal("the password appears in the --debug output")
		}
	})
}

func TestSyncLegacyConfig(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{Htpasswd: map[string]string{"u": "p4ssw0rd"}})
		digest, _, _ := src.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}, false, 70)
		dir := t.TempDir()
		cfg := writeFile(t, dir, "config.json", fmt.Sprintf(`{
  "auth": {"%[2]s": {"username": "u", "password": "p4ssw0rd"}},
  "images": {"%[1]s/lib/multi:v1": ["%[2]s/a/multi", "%[2]s/b/multi:stable"]}
}`, src.Host, dst.Host))
		log := filepath.Join(dir, "sync.log")
		r := runCLI(t, nil, "--config", cfg, "--log", log)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "a/multi", "v1", digest)
		assertDigest(t, dst, "b/multi", "stable", digest)
		if l := readFile(t, log); !strings.Contains(l, "copied") || !strings.Contains(l, dst.Host+"/b/multi:stable") {
			t.Errorf("log file lacks the per-image lines:\n%s", l)
		}
	})
}

// A blob going to destinations on two registries is read from the source
// once: one GET feeds both PUTs.
func TestOneReadForManyRegistries(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst1 := pair(t, kind, registrytest.Options{})
		dst2 := registrytest.Start(t, kind, registrytest.Options{})
		idx, _, children := src.PushIndex(t, "lib/multi", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 171)
		img, raw := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 3, 64<<10, false, 172)
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf(`%[1]s/lib/multi:1: [%[2]s/a/multi, %[3]s/b/multi]
%[1]s/lib/app:1: [%[2]s/a/app, %[3]s/b/app, %[3]s/c/app]
`, src.Host, dst1.Host, dst2.Host))
		if r := runCLI(t, nil, "--images", images, "--no-ledger"); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, d := range []*registrytest.Registry{dst1, dst2} {
			assertDigest(t, d, map[*registrytest.Registry]string{dst1: "a", dst2: "b"}[d]+"/multi", "1", idx)
			assertDigest(t, d, map[*registrytest.Registry]string{dst1: "a", dst2: "b"}[d]+"/app", "1", img)
		}
		assertDigest(t, dst2, "c/app", "1", img)
		for _, c := range children {
			assertDigest(t, dst2, "b/multi", c, c)
		}
		gets := map[string]int{}
		for _, q := range src.Log.All() {
			if q.Method == "GET" && strings.Contains(q.Path, "/blobs/") {
				gets[q.Path[strings.LastIndex(q.Path, "/")+1:]]++
			}
		}
		if blobBytes(t, raw) == 0 || len(gets) < 4 {
			t.Fatalf("too few blobs read (%d) to prove anything", len(gets))
		}
		for d, n := range gets {
			if n != 1 {
				t.Errorf("blob %s read %d times from the source, want 1", d, n)
			}
		}
		// dst2's second repository mounted, never uploaded twice.
		for d, n := range uploadsPerDigest(dst2) {
			if n != 1 {
				t.Errorf("blob %s uploaded %d times to one registry", d, n)
			}
		}
	})
}
