package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

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
	return &http.Client{Transport: rt, CheckRedirect: checkRedirect}, nil
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
	if err := checkRef("manifest reference", ref); err != nil {
		return Descriptor{}, err
	}
	req, err := r.newRequest(ctx, http.MethodHead, "/manifests/"+url.PathEscape(ref), nil)
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
	if d.Digest != "" && !ValidDigest(d.Digest) {
		d.Digest = "" // not a digest: read the manifest and compute it instead
	}
	if d.Digest == "" || d.MediaType == "" {
		_, d, err = r.GetManifest(ctx, ref)
	}
	return d, err
}

// GetManifest returns the manifest bytes exactly as the registry holds them.
// A digest reference is verified against the bytes.
func (r *Repo) GetManifest(ctx context.Context, ref string) ([]byte, Descriptor, error) {
	if err := checkRef("manifest reference", ref); err != nil {
		return nil, Descriptor{}, err
	}
	raw, hdr, err := r.getSmall(ctx, "/manifests/"+url.PathEscape(ref), acceptManifests, maxManifestSize+1)
	if err != nil {
		return nil, Descriptor{}, err
	}
	if len(raw) > maxManifestSize {
		return nil, Descriptor{}, Permanent(fmt.Errorf("manifest %s:%s is larger than %d bytes", r, ref, maxManifestSize))
	}
	d := Descriptor{MediaType: mediaType(hdr), Digest: Digest(raw), Size: int64(len(raw))}
	if ValidDigest(ref) {
		if got := DigestWith(ref, raw); got != ref {
			return nil, Descriptor{}, Permanent(fmt.Errorf("manifest %s@%s: registry sent bytes with digest %s", r, ref, got))
		}
		d.Digest = ref
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
	if err := checkRef("manifest reference", ref); err != nil {
		return err
	}
	req, err := r.newRequest(ctx, http.MethodPut, "/manifests/"+url.PathEscape(ref), bytes.NewReader(raw))
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

// Bounds of one tag listing. They are generous (Docker Hub's largest
// repositories have tens of thousands of tags) and stop a registry whose
// pagination never ends.
var (
	maxTagPages = 5000     // pages per listing
	maxTags     = 500_000  // tags per listing
	maxTagBytes = 64 << 20 // bytes of tag-list bodies per listing
)

// Tags lists every tag, following the Link header across pages. Tags that
// do not follow the distribution grammar are returned apart in invalid and
// never used in a URL. A listing whose pagination repeats a page, leaves
// the repository's tags/list or passes the bounds above fails.
func (r *Repo) Tags(ctx context.Context) (tags, invalid []string, err error) {
	next := "/tags/list?n=1000"
	seen := map[string]bool{}
	budget := int64(maxTagBytes)
	pages := 0
	for next != "" {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if pages++; pages > maxTagPages {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d pages", r, maxTagPages))
		}
		body, hdr, err := r.getSmall(ctx, next, "", budget+1)
		if err != nil {
			return nil, nil, err
		}
		if budget -= int64(len(body)); budget < 0 {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d bytes", r, maxTagBytes))
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: %w", r, err))
		}
		for _, t := range page.Tags {
			if ValidTag(t) {
				tags = append(tags, t)
			} else {
				invalid = append(invalid, t)
			}
		}
		if len(tags)+len(invalid) > maxTags {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d tags", r, maxTags))
		}
		base, _ := url.Parse(r.h.scheme + "://" + r.h.reg.RegistryStr() + "/v2/" + r.Name + next)
		if strings.HasPrefix(next, "http") {
			base, _ = url.Parse(next)
		}
		if next, err = nextLink(base, hdr.Get("Link")); err != nil {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: %w", r, err))
		}
		if next == "" {
			break
		}
		u, _ := url.Parse(next)
		if u == nil || !sameHost(u, r.h.reg.RegistryStr()) || u.Path != "/v2/"+r.Name+"/tags/list" {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: the next page (Link header) leaves the repository's tags/list", r))
		}
		if seen[next] {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: the Link header repeats a page: pagination loops", r))
		}
		seen[next] = true
	}
	return tags, invalid, nil
}

// HeadBlob reports whether the repository has the blob.
func (r *Repo) HeadBlob(ctx context.Context, digest string) (bool, error) {
	if err := checkDigest("blob", digest); err != nil {
		return false, err
	}
	req, err := r.newRequest(ctx, http.MethodHead, "/blobs/"+url.PathEscape(digest), nil)
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
	if err := checkDigest("blob", digest); err != nil {
		return nil, 0, err
	}
	req, err := r.newRequest(ctx, http.MethodGet, "/blobs/"+url.PathEscape(digest), nil)
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
// mounted true means the blob is now present and no upload is needed. A
// mount the registry refuses with an error (the candidate came from a stale
// ledger, or the registry does not mount) falls back to a plain session.
func (r *Repo) StartUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error) {
	if err := checkDigest("blob", digest); err != nil {
		return "", false, err
	}
	if from != "" && from != r.Name && ValidRepository(from) {
		loc, mounted, err := r.startUpload(ctx, "/blobs/uploads/?mount="+url.QueryEscape(digest)+"&from="+url.QueryEscape(from), []string{from})
		if err == nil || ctx.Err() != nil {
			return loc, mounted, err
		}
		if r.c.log != nil {
			r.c.log.Debug("mount refused: uploading instead", "digest", digest, "into", r.String(), "from", from, "error", err)
		}
	}
	return r.startUpload(ctx, "/blobs/uploads/", nil)
}

func (r *Repo) startUpload(ctx context.Context, u string, alsoPull []string) (location string, mounted bool, err error) {
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
		if err != nil || resp.Header.Get("Location") == "" || (loc.Scheme != "https" && loc.Scheme != "http") {
			return "", false, fmt.Errorf("POST %s: upload session without a usable Location", r)
		}
		return loc.String(), false, nil
	}
	return "", false, newError(resp)
}

// ErrMonolithicRefused says the registry refused a blob in one PUT; the
// registry is switched to chunked (PATCH) uploads and the upload is worth
// another attempt.
var ErrMonolithicRefused = errors.New("the registry refused a monolithic upload: switching to chunked uploads")

// chunkSize is the size of one PATCH of a chunked upload; a registry that
// refuses it as too large gets halves, down to minChunkSize.
var (
	chunkSize    = 4 << 20
	minChunkSize = 64 << 10
)

// PutUpload sends the blob (size bytes streamed from body) to an upload
// session: in one PUT, or, for a registry that refused that once in this
// run, in PATCH chunks and a closing PUT. The registry checks the digest. A
// session that fails is cancelled (DELETE) so that it does not linger.
func (r *Repo) PutUpload(ctx context.Context, location, digest string, size int64, body io.Reader) error {
	var err error
	if r.h.chunked.Load() {
		err = r.putChunked(ctx, location, digest, body)
	} else {
		err = r.putMonolithic(ctx, location, digest, size, body)
	}
	if err != nil {
		r.CancelUpload(ctx, location)
	}
	return err
}

func (r *Repo) putMonolithic(ctx context.Context, location, digest string, size int64, body io.Reader) error {
	req, err := r.newRequest(ctx, http.MethodPut, withDigest(location, digest), io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.do(ctx, req)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusCreated {
		resp.Body.Close()
		return nil
	}
	e := newError(resp)
	if size > 0 && refusesMonolithic(e) {
		if !r.h.chunked.Swap(true) && r.c.log != nil {
			r.c.log.Warn("the registry refused a blob in one PUT: using chunked uploads (PATCH) from now on", "registry", r.Registry, "answer", e.Error())
		}
		return fmt.Errorf("%w (%v)", ErrMonolithicRefused, e)
	}
	return e
}

// refusesMonolithic reports an answer that refuses the form of a monolithic
// PUT (its size, or PUT with a body at all) rather than its content.
func refusesMonolithic(e *Error) bool {
	if e.HasCode(transport.DigestInvalidErrorCode, transport.SizeInvalidErrorCode, transport.BlobUnknownErrorCode, transport.BlobUploadUnknownErrorCode) {
		return false
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusRequestedRangeNotSatisfiable, http.StatusNotImplemented:
		return true
	}
	return false
}

// putChunked sends the blob in PATCH chunks of the host's chunk size (each
// with its Content-Range, following the Location each answer gives), then
// closes the session with an empty PUT carrying the digest. One chunk is in
// memory at a time. A chunk refused as too large (413: it never reached the
// registry) is resent in halves, down to minChunkSize, and the smaller size
// is kept for the host.
func (r *Repo) putChunked(ctx context.Context, location, digest string, body io.Reader) error {
	buf := make([]byte, r.h.chunkLen())
	var off int64
	for {
		n, rerr := io.ReadFull(body, buf)
		for data := buf[:n]; len(data) > 0; {
			part := data[:min(len(data), r.h.chunkLen())]
			next, err := r.patch(ctx, location, off, part)
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusRequestEntityTooLarge && len(part) > minChunkSize {
				r.h.shrinkChunk(len(part))
				continue
			}
			if err != nil {
				return err
			}
			location = next
			off += int64(len(part))
			data = data[len(part):]
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	req, err := r.newRequest(ctx, http.MethodPut, withDigest(location, digest), nil)
	if err != nil {
		return err
	}
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

// patch sends one chunk at offset off and returns the session's next location.
func (r *Repo) patch(ctx context.Context, location string, off int64, part []byte) (string, error) {
	req, err := r.newRequest(ctx, http.MethodPatch, location, bytes.NewReader(part))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+int64(len(part))-1))
	resp, err := r.do(ctx, req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
		return "", newError(resp)
	}
	resp.Body.Close()
	if l := resp.Header.Get("Location"); l != "" {
		u, err := resp.Request.URL.Parse(l)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return "", fmt.Errorf("PATCH %s: upload session without a usable Location", r)
		}
		return u.String(), nil
	}
	return location, nil
}

// CancelUpload abandons an upload session (DELETE), best effort: it runs
// even when ctx is already cancelled (an interrupted run), for a few seconds
// at most.
func (r *Repo) CancelUpload(ctx context.Context, location string) {
	if location == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := r.newRequest(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return
	}
	resp, err := r.do(ctx, req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r.c.Stats.Cancelled.Add(1)
}

func withDigest(location, digest string) string {
	u, err := url.Parse(location)
	if err != nil {
		return location
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	return u.String()
}

// Digest returns the sha256 digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DigestWith returns the digest of b with the algorithm of like (sha256 or
// sha512).
func DigestWith(like string, b []byte) string {
	if strings.HasPrefix(like, "sha512:") {
		sum := sha512.Sum512(b)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	return Digest(b)
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
