package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// seedNamespaces pushes one small image into each of n repositories in
// each namespace and returns repository → digest.
func seedNamespaces(t *testing.T, src *registrytest.Registry, namespaces []string, n int) map[string]string {
	t.Helper()
	want := map[string]string{}
	for i, ns := range namespaces {
		for j := range n {
			repo := fmt.Sprintf("%s/app%d", ns, j)
			want[repo], _ = src.PushRandomImage(t, repo, "v1", linuxAmd64, 1, 128, (i+j)%2 == 0, int64(7000+i*100+j))
		}
	}
	return want
}

// catalogOf reads a registry's repository list directly (not counted).
func catalogOf(t *testing.T, r *registrytest.Registry) []string {
	t.Helper()
	resp, err := http.Get("http://" + r.Direct + "/v2/_catalog?n=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("catalog of %s: %s", r.Direct, resp.Status)
	}
	var page struct{ Repositories []string }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	slices.Sort(page.Repositories)
	return page.Repositories
}

// underPrefix returns the repositories of list below prefix/, without it.
func underPrefix(list []string, prefix string) []string {
	var out []string
	for _, r := range list {
		if rest, ok := strings.CutPrefix(r, prefix+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestDiscovery: a registry of 30 repositories in 3 namespaces. A one-off
// `ns1/*` mirrors exactly ns1's ten, a legacy --images key `ns3/*` ns3's,
// `**` in the config file all thirty, and repositories: exclude leaves out
// what it names; plan shows a wildcard's repositories. Each copy keeps its
// digest; each registry's catalog is read once per run.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		want := seedNamespaces(t, src, []string{"ns1", "ns2", "ns3"}, 10)
		check := func(prefix string, repos []string) {
			t.Helper()
			got := underPrefix(catalogOf(t, dst), prefix)
			slices.Sort(repos)
			if !slices.Equal(got, repos) {
				t.Errorf("%s/ holds %v, want %v", prefix, got, repos)
			}
			for _, r := range repos {
				srcRepo := r
				if !strings.Contains(r, "/") { // below a namespace prefix
					srcRepo = strings.SplitN(prefix, "/", 2)[1] + "/" + r
				}
				assertDigest(t, dst, prefix+"/"+r, "v1", want[srcRepo])
			}
		}
		names := func(ns string, except ...string) []string {
			var out []string
			for r := range want {
				if rest, ok := strings.CutPrefix(r, ns+"/"); ok && !slices.Contains(except, r) {
					out = append(out, rest)
				}
			}
			return out
		}

		// plan: the rows of ns2's ten repositories, nothing written
		r := runCLI(t, nil, "plan", src.Host+"/ns2/*", dst.Host+"/plan")
		if r.code != exitOK || strings.Count(r.stdout, dst.Host+"/plan/app") != 10 {
			t.Fatalf("plan exit %d", r.code)
		}
		if n := src.Log.Count("GET", `^/v2/_catalog`); n != 1 {
			t.Errorf("plan read the catalog %d times, want 1", n)
		}
		if got := catalogOf(t, dst); len(got) != 0 {
			t.Errorf("plan wrote %v", got)
		}
		// and what a tag filter removed, per repository
		r = runCLI(t, nil, "plan", src.Host+"/ns2/*", dst.Host+"/plan", "--exclude", "^v1$")
		if r.code != exitOK || strings.Count(r.stdout, "tag filters of") != 10 || !strings.Contains(r.stdout, "("+src.Host+"/ns2/app3)") {
			t.Errorf("plan with a filter: exit %d, want the filters of the ten repositories", r.code)
		}

		// one-off: ns1/* → dst/one
		if r := runCLI(t, nil, "sync", src.Host+"/ns1/*", dst.Host+"/one/ns1"); r.code != exitOK {
			t.Fatalf("sync exit %d", r.code)
		}
		check("one/ns1", names("ns1"))

		// legacy rule file: the same wildcard key
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/ns3/*: %s/legacy/ns3\n", src.Host, dst.Host))
		if r := runCLI(t, nil, "--images", images); r.code != exitOK {
			t.Fatalf("legacy exit %d", r.code)
		}
		check("legacy/ns3", names("ns3"))

		// native config: ** (all thirty) and ** with include/exclude
		src.Log.Reset()
		cfg := writeFile(t, t.TempDir(), "imagesync.yaml", fmt.Sprintf(`sync:
  - from: %[1]s/**
    to: %[2]s/all
  - from: %[1]s/**
    to: %[2]s/some
    repositories:
      include: [ns2/*, ns3/*]
      exclude: [ns2/app1*, ns3/app7]
`, src.Host, dst.Host))
		if r := runCLI(t, nil, "sync", "-f", cfg); r.code != exitOK {
			t.Fatalf("config exit %d", r.code)
		}
		if n := src.Log.Count("GET", `^/v2/_catalog`); n != 1 {
			t.Errorf("the catalog was read %d times, want once for both entries", n)
		}
		var all []string
		for r := range want {
			all = append(all, r)
		}
		check("all", all)
		var some []string
		for _, r := range names("ns2", "ns2/app1") {
			some = append(some, "ns2/"+r)
		}
		for _, r := range names("ns3", "ns3/app7") {
			some = append(some, "ns3/"+r)
		}
		check("some", some)
		if len(some) != 18 {
			t.Errorf("some: %d repositories, want 18", len(some))
		}

		// repositories: naming every repository reads no catalog
		src.Log.Reset()
		cfg = writeFile(t, t.TempDir(), "imagesync.yaml", fmt.Sprintf(`sync:
  - from: %[1]s/**
    to: %[2]s/named
    repositories: [ns1/app0, ns2/app5]
`, src.Host, dst.Host))
		if r := runCLI(t, nil, "sync", "-f", cfg); r.code != exitOK {
			t.Fatalf("named exit %d", r.code)
		}
		if n := src.Log.Count("GET", `^/v2/_catalog`); n != 0 {
			t.Errorf("%d catalog requests for named repositories", n)
		}
		check("named", []string{"ns1/app0", "ns2/app5"})
	})
}

// TestDiscoveryHostileCatalog: a catalog whose Link header repeats a page,
// one that lists more repositories than the bound, and one that refuses
// (401, 403, 404) all fail the rule with a clear error; a catalog that lists
// invalid repository names reports them, copies the valid ones and never
// sends an invalid name anywhere.
func TestDiscoveryHostileCatalog(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		good, _ := src.PushRandomImage(t, "ns1/good", "v1", linuxAmd64, 1, 128, true, 7501)
		evil := []string{"ns1/../victim", "ns1/Victim", "ns1/victim/../../x", "ns1//victim", "ns1/victim%2f..", "ns1/" + strings.Repeat("v", 300)}
		var mode string
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.URL.Path != "/v2/_catalog" {
				forward.ServeHTTP(w, r)
				return
			}
			switch mode {
			case "loop":
				w.Header().Set("Link", `</v2/_catalog?last=ns1/good&n=1000>; rel="next"`)
				io.WriteString(w, `{"repositories":["ns1/good"]}`)
			case "huge":
				names := make([]string, 100_001)
				for i := range names {
					names[i] = fmt.Sprintf("ns1/r%d", i)
				}
				json.NewEncoder(w).Encode(map[string]any{"repositories": names})
			case "evil":
				json.NewEncoder(w).Encode(map[string]any{"repositories": append([]string{"ns1/good", "../victim"}, evil...)})
			default:
				code := map[string]int{"401": 401, "403": 403, "404": 404}[mode]
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"catalog %s"}]}`, mode)
			}
		})
		for _, tc := range []struct{ mode, msg string }{
			{"loop", "repeats a page"},
			{"huge", "more than 100000 repositories"},
			{"401", "refuses to list its repositories"},
			{"403", "refuses to list its repositories"},
			{"404", "refuses to list its repositories"},
		} {
			mode = tc.mode
			r := runCLI(t, nil, "sync", front.Host+"/ns1/*", dst.Host+"/m", "--retries", "1")
			if r.code == exitOK || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("%s: exit %d, want a failure saying %q", tc.mode, r.code, tc.msg)
			}
			if n := front.Count("GET", "/_catalog"); tc.mode == "loop" && n != 2 {
				t.Errorf("loop: %d catalog requests, want 2", n)
			}
		}
		if got := catalogOf(t, dst); len(got) != 0 {
			t.Errorf("a failed catalog copied %v", got)
		}

		mode = "evil"
		r := runCLI(t, nil, "sync", front.Host+"/ns1/*", dst.Host+"/m", "-o", "json")
		if r.code != exitSomeFail {
			t.Fatalf("evil: exit %d, want %d", r.code, exitSomeFail)
		}
		assertDigest(t, dst, "m/good", "v1", good)
		if got := catalogOf(t, dst); !slices.Equal(got, []string{"m/good"}) {
			t.Errorf("destination holds %v", got)
		}
		failed := 0
		for _, j := range parseSyncReport(t, r).Jobs {
			if j.Action == "failed" {
				failed++
				if !strings.Contains(j.Error, "not a valid repository name") {
					t.Errorf("failed job %+v", j)
				}
			}
		}
		if failed != len(evil) {
			t.Errorf("%d failed jobs, want one per invalid name (%d)", failed, len(evil))
		}
		for _, e := range front.Seen() {
			if strings.Contains(strings.ToLower(e.String()), "victim") || strings.Contains(e.String(), "vvvvvvvvvv") {
				t.Errorf("an invalid name was sent: %s", e)
			}
		}
		noPathTricks(t, src)
		noPathTricks(t, dst)
	})
}
