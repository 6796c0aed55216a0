package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReferrersAnswers: how the answers of registries with and without the
// referrers API are told apart.
func TestReferrersAnswers(t *testing.T) {
	subject := "sha256:" + strings.Repeat("a", 64)
	index := `{"schemaVersion":2,"mediaType":"` + string(MediaOCIIndex) + `","manifests":[]}`
	for _, tc := range []struct {
		name    string
		status  int
		ctype   string
		body    string
		wantAPI bool
		wantErr bool
	}{
		{"the API", 200, string(MediaOCIIndex), index, true, false},
		{"the API, json", 200, "application/json", index, true, false},
		{"unknown route (distribution)", 404, "text/plain; charset=utf-8", "404 page not found\n", false, false},
		{"unknown repository (API)", 404, "application/json", `{"errors":[{"code":"NAME_UNKNOWN"}]}`, true, false},
		{"method not allowed", 405, "text/plain", "", false, false},
		{"bad request", 400, "application/json", `{"errors":[{"code":"UNSUPPORTED"}]}`, false, false},
		{"an HTML page", 200, "text/html", "<html></html>", false, false},
		{"denied", 403, "application/json", `{"errors":[{"code":"DENIED"}]}`, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/ns/app/referrers/"+subject {
					t.Errorf("path %s", r.URL.Path)
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			repo, err := c.Repo(context.Background(), host, "ns/app", false)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := repo.Referrers(context.Background(), subject)
			switch {
			case tc.wantErr:
				if err == nil || errors.Is(err, ErrNoReferrersAPI) {
					t.Fatalf("want an error, got %v", err)
				}
			case tc.wantAPI:
				if err != nil || !strings.Contains(string(raw), `"manifests"`) {
					t.Fatalf("want an index, got %q, %v", raw, err)
				}
			default:
				if !errors.Is(err, ErrNoReferrersAPI) {
					t.Fatalf("want ErrNoReferrersAPI, got %q, %v", raw, err)
				}
			}
		})
	}
	// A digest that is not one never reaches the registry.
	var n atomic.Int32
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	if _, err := repo.Referrers(context.Background(), "sha256:../../x"); err == nil || !IsPermanent(err) || n.Load() != 0 {
		t.Errorf("invalid digest: %v, %d requests", err, n.Load())
	}
}
