package client

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/oci"
)

// Repo is one repository of one registry, with the credentials it resolved to.
type Repo struct {
	c        *Client
	h        *host
	Registry string // as in the rules: "docker.io", "127.0.0.1:5000"
	Name     string // "library/nginx"
	Access   credentials.Access
	push     bool
	scope    string // the token scope instead of the repository's (the catalog)
}

// String returns "registry/repository".
func (r *Repo) String() string { return r.Registry + "/" + r.Name }

// Host returns the registry host the API is reached at (docker.io → index.docker.io).
func (r *Repo) Host() string { return r.h.reg.RegistryStr() }

// newRequest builds a request for a path below /v2/<name> (or an absolute
// URL the registry handed out), pinging the registry first if this is the
// run's first request to it: the ping decides the scheme.
func (r *Repo) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if err := r.h.ping(ctx); err != nil {
		return nil, err
	}
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = r.h.scheme + "://" + r.h.reg.RegistryStr() + "/v2/" + r.Name + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err == nil {
		// Set here, the transport's userAgent need not clone the request
		// (every request of a run was copied whole for this one header).
		req.Header.Set("User-Agent", r.c.userAgent)
	}
	return req, err
}

// client returns an HTTP client authenticated for the scopes. Repos listed in
// alsoPull get a pull scope too (for cross-repository mounts).
func (r *Repo) client(ctx context.Context, alsoPull ...string) (*http.Client, error) {
	action := "pull"
	if r.push {
		action = "pull,push"
	}
	scopes := []string{"repository:" + r.Name + ":" + action}
	if r.scope != "" {
		scopes = []string{r.scope}
	}
	for _, p := range alsoPull {
		scopes = append(scopes, "repository:"+p+":pull")
	}
	rt, err := r.c.transport(ctx, r.h, r.Access, scopes)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, CheckRedirect: checkRedirect}, nil
}

func (r *Repo) do(ctx context.Context, req *http.Request, alsoPull ...string) (*http.Response, error) {
	hc, err := r.client(ctx, alsoPull...)
	if err != nil {
		return nil, err
	}
	if req.Context() != ctx {
		req = req.WithContext(ctx)
	}
	return hc.Do(req)
}

// Digest returns the sha256 digest of b (oci.Digest).
func Digest(b []byte) string { return oci.Digest(b) }

// DigestWith returns the digest of b with the algorithm of like (sha256 or
// sha512).
func DigestWith(like string, b []byte) string { return oci.DigestWith(like, b) }

// CredentialSource says where the credentials used for this repository came
// from (an auth file entry, docker's config, anonymous), for messages.
func (r *Repo) CredentialSource() string { return r.Access.Source }
