package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestImmutableTags: 60 tags in two repositories, copied once. A re-run
// with --immutable sends each source repository one tag-list request and
// neither registry a manifest request (without it: a HEAD per tag on each
// side); plan says "skip (immutable)"; verify still checks every tag; a new
// tag is copied on the next run.
func TestImmutableTags(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		// 30 tags per repository: what this shows is requests per tag,
		// counted, not timed (100 made it make test's costliest test).
		const perRepo, all = 30, 60
		digest, raw := src.PushRandomImage(t, "lib/a", "seed", linuxAmd64, 1, 256, true, 8101)
		for i := range perRepo {
			src.PushManifest(t, "lib/a", fmt.Sprintf("v1.0.%d", i), registrytest.MediaTypeOCIManifest, raw)
		}
		// lib/b holds its own image (its blobs pushed there), perRepo tags of it.
		digestB, rawB := src.PushRandomImage(t, "lib/b", "v2.0.0", linuxAmd64, 1, 256, false, 8102)
		for i := 1; i < perRepo; i++ {
			src.PushManifest(t, "lib/b", fmt.Sprintf("v2.0.%d", i), registrytest.MediaTypeDockerManifest, rawB)
		}
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/a:/^v/: %[2]s/m/a\n%[1]s/lib/b:/^v/: %[2]s/m/b\n", src.Host, dst.Host))
		immutable := []string{"--immutable", `^v\d+\.\d+\.\d+$`}
		if r := runCLI(t, nil, append([]string{"--images", images}, immutable...)...); r.code != exitOK || !strings.Contains(r.stderr, fmt.Sprintf("%d copied", all)) {
			t.Fatalf("first sync exit %d", r.code)
		}
		counts := func(what string) (srcManifests, dstManifests, srcTagLists, srcAll, dstAll int) {
			srcManifests, dstManifests = src.Log.Count("", "/manifests/"), dst.Log.Count("", "/manifests/")
			srcTagLists, srcAll, dstAll = src.Log.Count("GET", "/tags/list$"), len(src.Log.All()), len(dst.Log.All())
			t.Logf("%s: source %d requests (%d tag lists, %d manifests), destination %d requests (%d manifests)", what, srcAll, srcTagLists, srcManifests, dstAll, dstManifests)
			src.Log.Reset()
			dst.Log.Reset()
			return
		}
		counts("first sync")

		// Without --immutable, a no-op re-run asks each side once per tag.
		if r := runCLI(t, nil, "--images", images); r.code != exitOK {
			t.Fatalf("re-run exit %d", r.code)
		}
		if sm, dm, _, _, _ := counts("re-run without --immutable"); sm < all || dm < all {
			t.Errorf("without --immutable: %d source and %d destination manifest requests, want a HEAD per tag on each side", sm, dm)
		}

		// With it: one tag list per repository, no manifest request at all.
		r := runCLI(t, nil, append([]string{"--images", images}, immutable...)...)
		if r.code != exitOK || !strings.Contains(r.stderr, fmt.Sprintf("%d skipped", all)) {
			t.Fatalf("immutable re-run exit %d", r.code)
		}
		if sm, dm, tl, _, _ := counts("re-run with --immutable"); sm != 0 || dm != 0 || tl != 2 {
			t.Errorf("with --immutable: %d source and %d destination manifest requests, %d tag lists; want 0, 0 and 2", sm, dm, tl)
		}

		// plan says so, with the same requests.
		r = runCLI(t, nil, append([]string{"plan", "--images", images}, immutable...)...)
		if r.code != exitOK || strings.Count(r.stdout, "skip (immutable)") != all {
			t.Errorf("plan exit %d, want %d rows skip (immutable)", r.code, all)
		}
		if sm, dm, tl, _, _ := counts("plan with --immutable"); sm != 0 || dm != 0 || tl != 2 {
			t.Errorf("plan: %d source and %d destination manifest requests, %d tag lists", sm, dm, tl)
		}

		// verify still checks every destination tag.
		if r := runCLI(t, nil, append([]string{"verify", "--images", images}, immutable...)...); r.code != exitOK {
			t.Errorf("verify exit %d", r.code)
		}
		if _, dm, _, _, _ := counts("verify"); dm < all {
			t.Errorf("verify made %d destination manifest requests, want one per tag at least", dm)
		}

		// A new tag arrives on the next run; the others stay untouched.
		newDigest, _ := src.PushRandomImage(t, "lib/a", "v1.1.0", linuxAmd64, 1, 256, true, 8103)
		r = runCLI(t, nil, append([]string{"--images", images}, immutable...)...)
		if r.code != exitOK || !strings.Contains(r.stderr, "1 copied") || !strings.Contains(r.stderr, fmt.Sprintf("%d skipped", all)) {
			t.Errorf("new tag run exit %d", r.code)
		}
		if sm, _, _, _, _ := counts("new tag run"); sm > 3 {
			t.Errorf("%d source manifest requests for one new tag", sm)
		}
		assertDigest(t, dst, "m/a", "v1.1.0", newDigest)
		assertDigest(t, dst, "m/a", "v1.0.17", digest)
		assertDigest(t, dst, "m/b", fmt.Sprintf("v2.0.%d", perRepo-1), digestB)

		// Deleted at the mirror behind imagesync's back: immutable does not
		// look, verify finds it and marks it, the next run copies it again.
		dst.DeleteManifest(t, "m/a", newDigest)
		if r := runCLI(t, nil, append([]string{"--images", images}, immutable...)...); r.code != exitOK || dst.HasManifest(t, "m/a", "v1.1.0") {
			t.Errorf("immutable re-run exit %d", r.code)
		}
		if r := runCLI(t, nil, append([]string{"verify", "--images", images}, immutable...)...); r.code == exitOK {
			t.Errorf("verify exit %d with a tag missing at the mirror", r.code)
		}
		if r := runCLI(t, nil, append([]string{"--images", images}, immutable...)...); r.code != exitOK || !strings.Contains(r.stderr, "1 copied") {
			t.Errorf("repair run exit %d", r.code)
		}
		assertDigest(t, dst, "m/a", "v1.1.0", newDigest)
	})
}
