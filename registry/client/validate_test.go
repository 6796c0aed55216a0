package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestValidTag(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		want bool
	}{
		{"v1", true}, {"latest", true}, {"_x", true}, {"1.2.3-rc.1_b", true}, {"A", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false}, {".v1", false}, {"-v1", false},
		{"v1/../../../../victim/manifests/pwned", false},
		{"v1?x=y", false}, {"v1#frag", false}, {"v1%2F", false}, {"v 1", false}, {"v1\n", false},
		{"sha256:" + strings.Repeat("a", 64), false}, {"ü", false},
	} {
		if got := ValidTag(tc.tag); got != tc.want {
			t.Errorf("ValidTag(%q) = %v, want %v", tc.tag, got, tc.want)
		}
	}
}

func TestValidDigest(t *testing.T) {
	for _, tc := range []struct {
		d    string
		want bool
	}{
		{"sha256:" + strings.Repeat("a", 64), true},
		{"sha512:" + strings.Repeat("0", 128), true},
		{"sha256:" + strings.Repeat("a", 63), false},
		{"sha256:" + strings.Repeat("a", 65), false},
		{"sha256:" + strings.Repeat("A", 64), false},
		{"sha512:" + strings.Repeat("0", 64), false},
		{"md5:" + strings.Repeat("0", 32), false},
		{"x/../../../../victim/manifests/pwned2", false},
		{"sha256:" + strings.Repeat("a", 60) + "/../", false},
		{"", false}, {"sha256", false},
	} {
		if got := ValidDigest(tc.d); got != tc.want {
			t.Errorf("ValidDigest(%q) = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestValidRepository(t *testing.T) {
	for _, tc := range []struct {
		r    string
		want bool
	}{
		{"library/nginx", true}, {"a", true}, {"a/b/c", true}, {"my-app", true}, {"my--app", true},
		{"a.b", true}, {"a_b", true}, {"a__b", true}, {"0x/y9", true},
		{"", false}, {"A/b", false}, {"a/../b", false}, {"../a", false}, {"a//b", false}, {"/a", false},
		{"a/", false}, {"a___b", false}, {"a..b", false}, {"-a", false}, {"a-", false}, {"a?b", false},
		{"a/b/manifests/x", true}, // a valid name, however odd
		{strings.Repeat("a", 256), false},
	} {
		if got := ValidRepository(tc.r); got != tc.want {
			t.Errorf("ValidRepository(%q) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestInvalidReferenceIsPermanentAndNeverSent(t *testing.T) {
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent for an invalid reference: %s %s", r.Method, r.URL)
	})
	repo, err := c.Repo(context.Background(), host, "ns/app", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bad := "v1/../../victim/manifests/pwned"
	_, err1 := repo.HeadManifest(ctx, bad)
	_, _, err2 := repo.GetManifest(ctx, "v1?x=y")
	err3 := repo.PutManifest(ctx, "v1#frag", MediaOCIManifest, []byte("{}"))
	_, err4 := repo.HeadBlob(ctx, "x/../../y")
	_, _, err5 := repo.GetBlob(ctx, "sha256:abc")
	_, _, err6 := repo.StartUpload(ctx, "sha256:abc", "")
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, ErrInvalidReference) || !IsPermanent(err) {
			t.Errorf("call %d: %v, want a permanent invalid reference", i+1, err)
		}
	}
	if _, err := c.Repo(ctx, host, "ns/../victim", false); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("repository with dot-segments: %v", err)
	}
}

func TestRegistryErrorTextIsPrintable(t *testing.T) {
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED\u001b[2J","message":"no\u001b]0;pwned\u0007\nlevel=INFO msg=forged `+strings.Repeat("x", 5000)+`"}]}`)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	_, _, err := repo.GetManifest(context.Background(), "v1")
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "forged") {
		t.Fatalf("got %v", err)
	}
	msg := e.Error()
	if strings.ContainsAny(msg, "\x1b\x07\n") || len(msg) > 1300 {
		t.Fatalf("unsafe error text (%d bytes): %q", len(msg), msg[:min(len(msg), 200)])
	}
}

// A Docker-Content-Digest that is not a digest is not believed: the
// manifest is read and its digest computed.
func TestInvalidDigestHeaderIsNotBelieved(t *testing.T) {
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`
	c, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", "sha256:../../victim")
		w.Header().Set("Content-Type", string(MediaOCIManifest))
		io.WriteString(w, body)
	})
	repo, _ := c.Repo(context.Background(), host, "ns/app", false)
	d, err := repo.HeadManifest(context.Background(), "v1")
	if err != nil || d.Digest != Digest([]byte(body)) {
		t.Fatalf("got %+v, %v; want the computed digest", d, err)
	}
}
