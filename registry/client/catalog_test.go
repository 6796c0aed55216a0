package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// The catalog follows the Link header across pages, keeps invalid names
// apart, stops at its bounds, refuses a next page outside /v2/_catalog, and
// says so when the registry refuses the catalog.
func TestCatalog(t *testing.T) {
	t.Run("pages", func(t *testing.T) {
		var paths []string
		c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
			paths = append(paths, r.URL.String())
			switch r.URL.Query().Get("last") {
			case "":
				w.Header().Set("Link", `</v2/_catalog?last=b%2Fx&n=2>; rel="next"`)
				io.WriteString(w, `{"repositories":["a/x","b/x"]}`)
			case "b/x":
				w.Header().Set("Link", `</v2/_catalog?last=d&n=2>; rel="next"`)
				io.WriteString(w, `{"repositories":["c/x","../victim"]}`)
			default:
				io.WriteString(w, `{"repositories":["d"]}`)
			}
		})
		repos, invalid, err := c.Catalog(context.Background(), host, "")
		if err != nil || strings.Join(repos, ",") != "a/x,b/x,c/x,d" || strings.Join(invalid, ",") != "../victim" {
			t.Fatalf("repos %q invalid %q err %v", repos, invalid, err)
		}
		if len(paths) != 3 || paths[0] != "/v2/_catalog?n=1000" {
			t.Errorf("requests %q", paths)
		}
	})
	defer func(p, n, b int) { maxCatalogPages, maxRepositories, maxCatalogBytes = p, n, b }(maxCatalogPages, maxRepositories, maxCatalogBytes)
	maxCatalogPages, maxRepositories, maxCatalogBytes = 20, 100, 1<<16
	for _, tc := range []struct {
		name string
		page func(w http.ResponseWriter, n int)
		want string
	}{
		{"loop", func(w http.ResponseWriter, n int) {
			w.Header().Set("Link", `</v2/_catalog?last=a&n=1>; rel="next"`)
			io.WriteString(w, `{"repositories":["a"]}`)
		}, "repeats a page"},
		{"endless", func(w http.ResponseWriter, n int) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?last=r%d>; rel="next"`, n))
			fmt.Fprintf(w, `{"repositories":["r%d"]}`, n)
		}, "more than 20 pages"},
		{"too many", func(w http.ResponseWriter, n int) {
			names := make([]string, 101)
			for i := range names {
				names[i] = fmt.Sprintf(`"r%d"`, i)
			}
			fmt.Fprintf(w, `{"repositories":[%s]}`, strings.Join(names, ","))
		}, "more than 100 repositories"},
		{"huge", func(w http.ResponseWriter, n int) {
			fmt.Fprintf(w, `{"repositories":["%s"]}`, strings.Repeat("a", 1<<17))
		}, "more than 65536 bytes"},
		{"elsewhere", func(w http.ResponseWriter, n int) {
			w.Header().Set("Link", `</v2/ns/app/tags/list>; rel="next"`)
			io.WriteString(w, `{"repositories":["a"]}`)
		}, "leaves the registry's /v2/_catalog"},
		{"refused", func(w http.ResponseWriter, n int) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}`)
		}, "refuses to list its repositories"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			c, host := server(t, func(w http.ResponseWriter, r *http.Request) { tc.page(w, int(n.Add(1))) })
			_, _, err := c.Catalog(context.Background(), host, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsPermanent(err) {
				t.Fatalf("got %v, want a permanent error with %q", err, tc.want)
			}
			var refused *CatalogRefusedError
			if tc.name == "refused" && !errors.As(err, &refused) {
				t.Errorf("not a CatalogRefusedError: %v", err)
			}
			if got := n.Load(); got > 21 {
				t.Fatalf("%d pages fetched", got)
			}
		})
	}
}

// A repository is missing only when its tag list answers 404 with
// NAME_UNKNOWN; every other answer leaves it "not known to be missing".
func TestRepoMissing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"name unknown", 404, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`, true},
		{"404 without a code", 404, `not found`, false},
		{"another code", 404, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, false},
		{"code on another status", 400, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, false},
		{"a tag list", 200, `{"name":"ns/app","tags":["v1"]}`, false},
		{"an empty tag list", 200, `{"name":"ns/app","tags":[]}`, false},
		{"denied", 401, `{"errors":[{"code":"UNAUTHORIZED"}]}`, false},
		{"a huge body", 404, `{"errors":[{"code":"NAME_UNKNOWN"}],"x":"` + strings.Repeat("a", 1<<20) + `"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked string
			c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
				asked = r.URL.String()
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			repo, err := c.Repo(context.Background(), host, "ns/app", false)
			if err != nil {
				t.Fatal(err)
			}
			got, err := repo.Missing(context.Background())
			if got != tc.want {
				t.Errorf("Missing = %v (%v), want %v", got, err, tc.want)
			}
			if asked != "/v2/ns/app/tags/list?n=1" {
				t.Errorf("asked %s", asked)
			}
		})
	}
}
