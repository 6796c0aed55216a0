package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/imagesync/imagesync/credentials"
)

// Manifest media types imagesync asks for. Schema 1 is asked for only to
// recognise it and say it is unsupported.
const (
	MediaOCIIndex      = "application/vnd.oci.image.index.v1+json"
	MediaOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	MediaDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
	MediaDockerSigned  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

var acceptManifests = strings.Join([]string{MediaOCIIndex, MediaOCIManifest, MediaDockerList, MediaDockerV2, MediaDockerSigned, MediaDockerSchema1}, ", ")

// maxManifestSize bounds a manifest read (distribution's own limit is 4 MiB).
const maxManifestSize = 8 << 20

// Descriptor is what a manifest HEAD or GET tells.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// Repo is one repository of one registry, with the credentials it resolved to.
type Repo struct {
	c        *Client
	h        *host
	Registry string // as in the rules: "docker.io", "127.0.0.1:5000"
	Name     string // "library/nginx"
	Access   credentials.Access
	push     bool
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
	return http.NewRequestWithContext(ctx, method, u, body)
}

// client returns an HTTP client authenticated for the scopes. Repos listed in
// alsoPull get a pull scope too (for cross-repository mounts).
func (r *Repo) client(ctx context.Context, alsoPull ...string) (*http.Client, error) {
	action := "pull"
	if r.push {
		action = "pull,push"
	}
	scopes := []string{"repository:" + r.Name + ":" + action}
	for _, p := range alsoPull {
		scopes = append(scopes, "repository:"+p+":pull")
	}
	rt, err := r.c.transport(ctx, r.h, r.Access, scopes)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

func (r *Repo) do(ctx context.Context, req *http.Request, alsoPull ...string) (*http.Response, error) {
	hc, err := r.client(ctx, alsoPull...)
	if err != nil {
		return nil, err
	}
	return hc.Do(req.WithContext(ctx))
}

// HeadManifest returns the descriptor of a tag or digest without fetching
// the manifest (free on Docker Hub's pull quota). A registry that does not
// send Docker-Content-Digest costs a GET.
func (r *Repo) HeadManifest(ctx context.Context, ref string) (Descriptor, error) {
	req, err := r.newRequest(ctx, http.MethodHead, "/manifests/"+ref, nil)
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := r.do(ctx, req)
	if err != nil {
		return Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Descriptor{}, newError(resp)
	}
	resp.Body.Close()
	d := Descriptor{MediaType: mediaType(resp.Header), Digest: resp.Header.Get("Docker-Content-Digest"), Size: resp.ContentLength}
	if d.Digest == "" || d.MediaType == "" {
		_, d, err = r.GetManifest(ctx, ref)
	}
	return d, err
}

// GetManifest returns the manifest bytes exactly as the registry holds them.
// A digest reference is verified against the bytes.
func (r *Repo) GetManifest(ctx context.Context, ref string) ([]byte, Descriptor, error) {
	raw, hdr, err := r.getSmall(ctx, "/manifests/"+ref, acceptManifests, maxManifestSize+1)
	if err != nil {
		return nil, Descriptor{}, err
	}
	if len(raw) > maxManifestSize {
		return nil, Descriptor{}, Permanent(fmt.Errorf("manifest %s:%s is larger than %d bytes", r, ref, maxManifestSize))
	}
	d := Descriptor{MediaType: mediaType(hdr), Digest: Digest(raw), Size: int64(len(raw))}
	if strings.HasPrefix(ref, "sha256:") && d.Digest != ref {
		return nil, Descriptor{}, Permanent(fmt.Errorf("manifest %s@%s: registry sent bytes with digest %s", r, ref, d.Digest))
	}
	if d.MediaType == "" || d.MediaType == "application/json" || d.MediaType == "text/plain" {
		d.MediaType = sniffMediaType(raw)
	}
	return raw, d, nil
}

// getSmall GETs a small document (a manifest, a page of tags) whole. A
// connection that breaks while the body is read is retried like one that
// breaks before the headers: the transport cannot see that far.
func (r *Repo) getSmall(ctx context.Context, path, accept string, limit int64) ([]byte, http.Header, error) {
	var lastErr error
	for attempt := 1; attempt <= max(1, r.c.policy.Attempts); attempt++ {
		if attempt > 1 {
			r.c.Stats.Retries.Add(1)
			if err := sleep(ctx, backoff(r.c.policy, attempt-1)); err != nil {
				return nil, nil, err
			}
		}
		req, err := r.newRequest(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := r.do(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, nil, newError(resp)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		resp.Body.Close()
		if err == nil {
			return body, resp.Header, nil
		}
		lastErr = fmt.Errorf("reading %s%s: %w", r, path, err)
		if !IsTransientNetwork(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, nil, lastErr
}

// PutManifest stores raw under ref (a tag or its digest) with the media type.
func (r *Repo) PutManifest(ctx context.Context, ref, mediaType string, raw []byte) error {
	req, err := r.newRequest(ctx, http.MethodPut, "/manifests/"+ref, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := r.do(ctx, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return newError(resp)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != Digest(raw) {
		return Permanent(fmt.Errorf("PUT manifest %s:%s: registry stored digest %s, sent %s", r, ref, got, Digest(raw)))
	}
	return nil
}

// Tags lists every tag, following the Link header across pages.
func (r *Repo) Tags(ctx context.Context) ([]string, error) {
	next := "/tags/list?n=1000"
	var all []string
	for next != "" {
		body, hdr, err := r.getSmall(ctx, next, "", 64<<20)
		if err != nil {
			return nil, err
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("tag list of %s: %w", r, err)
		}
		all = append(all, page.Tags...)
		base, _ := url.Parse(r.h.scheme + "://" + r.h.reg.RegistryStr() + "/v2/" + r.Name + next)
		if strings.HasPrefix(next, "http") {
			base, _ = url.Parse(next)
		}
		if next, err = nextLink(base, hdr.Get("Link")); err != nil {
			return nil, fmt.Errorf("tag list of %s: %w", r, err)
		}
	}
	return all, nil
}

// HeadBlob reports whether the repository has the blob.
func (r *Repo) HeadBlob(ctx context.Context, digest string) (bool, error) {
	req, err := r.newRequest(ctx, http.MethodHead, "/blobs/"+digest, nil)
	if err != nil {
		return false, err
	}
	resp, err := r.do(ctx, req)
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		resp.Body.Close()
		return true, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return false, nil
	}
	return false, newError(resp)
}

// GetBlob opens the blob for streaming (redirects to storage are followed).
func (r *Repo) GetBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	req, err := r.newRequest(ctx, http.MethodGet, "/blobs/"+digest, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := r.do(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, newError(resp)
	}
	return resp.Body, resp.ContentLength, nil
}

// StartUpload opens an upload session. With from set, it first asks the
// registry to mount the blob from that repository of the same registry:
// mounted true means the blob is now present and no upload is needed.
func (r *Repo) StartUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error) {
	u := "/blobs/uploads/"
	var alsoPull []string
	if from != "" && from != r.Name {
		u += "?mount=" + url.QueryEscape(digest) + "&from=" + url.QueryEscape(from)
		alsoPull = []string{from}
	}
	req, err := r.newRequest(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := r.do(ctx, req, alsoPull...)
	if err != nil {
		return "", false, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		resp.Body.Close()
		return "", true, nil
	case http.StatusAccepted:
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			return "", false, fmt.Errorf("POST %s: upload session without a usable Location", r)
		}
		return loc.String(), false, nil
	}
	return "", false, newError(resp)
}

// PutUpload sends the whole blob in one PUT to an upload session, streaming
// body (size bytes). The registry checks the digest.
func (r *Repo) PutUpload(ctx context.Context, location, digest string, size int64, body io.Reader) error {
	u, err := url.Parse(location)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	req, err := r.newRequest(ctx, http.MethodPut, u.String(), io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.do(ctx, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return newError(resp)
	}
	resp.Body.Close()
	return nil
}

// Digest returns the sha256 digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// sniffMediaType reads the mediaType field of an OCI/Docker manifest.
func sniffMediaType(raw []byte) string {
	var m struct {
		MediaType     string            `json:"mediaType"`
		SchemaVersion int               `json:"schemaVersion"`
		Manifests     []json.RawMessage `json:"manifests"`
		Signatures    []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return ""
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.SchemaVersion == 1 && m.Signatures != nil:
		return MediaDockerSigned
	case m.SchemaVersion == 1:
		return MediaDockerSchema1
	case m.Manifests != nil:
		return MediaOCIIndex
	default:
		return MediaOCIManifest
	}
}

func nextLink(base *url.URL, link string) (string, error) {
	if link == "" {
		return "", nil
	}
	start := strings.IndexByte(link, '<')
	end := strings.IndexByte(link, '>')
	if start < 0 || end < start {
		return "", fmt.Errorf("malformed Link header")
	}
	u, err := base.Parse(link[start+1 : end])
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
