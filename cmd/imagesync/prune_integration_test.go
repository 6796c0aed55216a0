package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestPrune: tags deleted at the source disappear from the mirror with
// --prune; a tag someone else pushed there stays; an empty or failed
// source listing deletes nothing; more than half of a repository is
// refused without --prune-force; the remaining digests are unchanged and
// verify is clean. A registry that deletes only by digest (distribution
// 2.8) keeps a tag whose digest another tag shares.
func TestPrune(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		want := map[string]string{}
		var rawV6 []byte
		for i := 1; i <= 6; i++ {
			tag := fmt.Sprintf("v%d", i)
			var raw []byte
			want[tag], raw = src.PushRandomImage(t, "lib/app", tag, linuxAmd64, 1, 200, i%2 == 0, int64(8300+i))
			if i == 6 {
				rawV6 = raw
			}
		}
		src.PushManifest(t, "lib/app", "v6-alias", registrytest.MediaTypeOCIManifest, rawV6)
		want["v6-alias"] = want["v6"]
		var mode string
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			switch {
			case r.URL.Path == "/v2/lib/app/tags/list" && mode == "empty":
				io.WriteString(w, `{"name":"lib/app","tags":[]}`)
			case r.URL.Path == "/v2/lib/app/tags/list" && mode == "fail":
				w.WriteHeader(http.StatusInternalServerError)
			default:
				forward.ServeHTTP(w, r)
			}
		})
		refuse := false
		dstFront := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodDelete && refuse {
				w.WriteHeader(http.StatusMethodNotAllowed)
				io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`)
				return
			}
			forward.ServeHTTP(w, r)
		})
		args := func(extra ...string) []string {
			return append([]string{front.Host + "/lib/app", dstFront.Host + "/m/app", "--prune", "--retries", "0"}, extra...)
		}
		holds := func(tags ...string) {
			t.Helper()
			got := dst.Tags(t, "m/app")
			slices.Sort(got)
			slices.Sort(tags)
			if !slices.Equal(got, tags) {
				t.Fatalf("the mirror holds %v, want %v", got, tags)
			}
			for _, tag := range tags {
				if tag != "local" {
					assertDigest(t, dst, "m/app", tag, want[tag])
				}
			}
		}
		if r := runCLI(t, nil, append([]string{"sync"}, args()...)...); r.code != exitOK {
			t.Fatalf("first sync exit %d", r.code)
		}
		local, _ := dst.PushRandomImage(t, "m/app", "local", linuxAmd64, 1, 200, true, 8399)
		want["local"] = local
		all := []string{"v1", "v2", "v3", "v4", "v5", "v6", "v6-alias", "local"}
		holds(all...)

		// v1 and v2 leave the source: plan shows two delete rows and deletes nothing.
		src.DeleteManifest(t, "lib/app", want["v1"])
		src.DeleteManifest(t, "lib/app", want["v2"])
		r := runCLI(t, nil, append([]string{"plan"}, args()...)...)
		if r.code != exitOK || strings.Count(r.stdout, "\ndelete ") != 2 || !strings.Contains(r.stdout, "m/app:v1") || !strings.Contains(r.stdout, "2 to delete") {
			t.Errorf("plan exit %d, want two delete rows", r.code)
		}
		holds(all...)

		// An empty or failed source listing deletes nothing.
		for _, m := range []string{"empty", "fail"} {
			mode = m
			runCLI(t, nil, append([]string{"sync"}, args()...)...)
			if n := dstFront.Count("DELETE", ""); n != 0 {
				t.Errorf("%s listing: %d DELETE requests", m, n)
			}
			holds(all...)
		}
		mode = ""

		// A registry that refuses deletes says so.
		refuse = true
		if r := runCLI(t, nil, append([]string{"sync"}, args()...)...); r.code == exitOK || !strings.Contains(r.stderr, "refuses to delete") {
			t.Errorf("refused deletes: exit %d, want a failure saying so", r.code)
		}
		refuse = false
		holds(all...)

		// sync deletes them, reported like copies.
		dir := t.TempDir()
		success := filepath.Join(dir, "success.yaml")
		r = runCLI(t, nil, append([]string{"sync", "-o", "json", "--output-success-images", success}, args()...)...)
		if r.code != exitOK {
			t.Fatalf("prune exit %d", r.code)
		}
		rep := parseSyncReport(t, r)
		deleted := 0
		for _, j := range rep.Jobs {
			if j.Action == "deleted" {
				deleted++
				if !strings.HasSuffix(j.Destination, "/m/app:v1") && !strings.HasSuffix(j.Destination, "/m/app:v2") {
					t.Errorf("deleted %s", j.Destination)
				}
			}
		}
		if deleted != 2 || rep.Summary["deleted"] != 2 {
			t.Errorf("%d deleted rows, summary %v", deleted, rep.Summary)
		}
		if s := readFile(t, success); !strings.Contains(s, "m/app:v1") {
			t.Errorf("success file lacks the deletion:\n%s", s)
		}
		all = []string{"v3", "v4", "v5", "v6", "v6-alias", "local"}
		holds(all...)

		// Three of the five tags imagesync wrote leave: more than half, refused.
		for _, tag := range []string{"v3", "v4", "v5"} {
			src.DeleteManifest(t, "lib/app", want[tag])
		}
		r = runCLI(t, nil, append([]string{"sync"}, args()...)...)
		if r.code == exitOK || !strings.Contains(r.stderr, "--prune-force") {
			t.Errorf("more than half: exit %d, want a failure naming --prune-force", r.code)
		}
		holds(all...)
		if r := runCLI(t, nil, append([]string{"sync"}, args("--prune-force")...)...); r.code != exitOK {
			t.Errorf("--prune-force exit %d", r.code)
		}
		all = []string{"v6", "v6-alias", "local"}
		holds(all...)

		// The rule stops selecting v6; v6-alias shares its digest.
		r = runCLI(t, nil, append([]string{"sync"}, args("--exclude", "^v6$")...)...)
		if kind == registrytest.Distribution2 {
			// 2.8 deletes only by digest: that would take v6-alias too.
			if r.code != exitSomeFail || !strings.Contains(r.stderr, "shares") {
				t.Errorf("shared digest on 2.8: exit %d", r.code)
			}
		} else {
			if r.code != exitOK {
				t.Errorf("delete by tag: exit %d", r.code)
			}
			all = []string{"v6-alias", "local"}
		}
		holds(all...)

		if r := runCLI(t, nil, "verify", src.Host+"/lib/app", dstFront.Host+"/m/app", "--exclude", "^v6$"); r.code != exitOK {
			t.Errorf("verify exit %d", r.code)
		}
	})
}

// TestPruneKeepsOtherRules: two rules write one destination repository
// from one source (v1.* and v2.*); --prune never deletes what the other
// rule selects, and deletes what neither selects any more.
func TestPruneKeepsOtherRules(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		want := map[string]string{}
		for i, tag := range []string{"v1.0", "v1.1", "v1.2", "v2.0", "v2.1"} {
			want[tag], _ = src.PushRandomImage(t, "lib/app", tag, linuxAmd64, 1, 200, true, int64(8400+i))
		}
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:/^v1/: %[2]s/m/app\n%[1]s/lib/app:/^v2/: %[2]s/m/app\n", src.Host, dst.Host))
		if r := runCLI(t, nil, "--images", images, "--prune"); r.code != exitOK {
			t.Fatalf("first sync exit %d", r.code)
		}
		if r := runCLI(t, nil, "--images", images, "--prune"); r.code != exitOK || strings.Contains(r.stderr, "deleted") {
			t.Fatalf("re-run exit %d: deleted what the other rule selects", r.code)
		}
		src.DeleteManifest(t, "lib/app", want["v1.1"])
		if r := runCLI(t, nil, "--images", images, "--prune"); r.code != exitOK || !strings.Contains(r.stderr, "1 deleted") {
			t.Fatalf("prune exit %d", r.code)
		}
		got := dst.Tags(t, "m/app")
		slices.Sort(got)
		if !slices.Equal(got, []string{"v1.0", "v1.2", "v2.0", "v2.1"}) {
			t.Errorf("the mirror holds %v", got)
		}
		for _, tag := range got {
			assertDigest(t, dst, "m/app", tag, want[tag])
		}
	})
}
