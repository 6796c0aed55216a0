package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUploadGone says the registry no longer has an upload session, or will
// not resume it (distribution 2.8 cancels a session whose stored size is not
// the offset its location was issued for): the upload starts afresh.
var ErrUploadGone = errors.New("the upload session is gone")

// IsSessionTrouble reports a registry's answer to a PATCH or the closing PUT
// of an upload whose bytes were verified that speaks of the session rather
// than of the request's right to be made: the session is unknown or invalid,
// the range is not where the registry stands (it may still be writing what a
// cut request sent), the chunk is too large, or the content the session
// holds does not match the digest (a resume went wrong). Ask the session
// where it stands, or start afresh, rather than fail.
func IsSessionTrouble(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case http.StatusRequestedRangeNotSatisfiable, http.StatusRequestEntityTooLarge:
		return true
	}
	return e.HasCode(transport.BlobUploadInvalidErrorCode, transport.BlobUploadUnknownErrorCode, "RANGE_INVALID",
		transport.DigestInvalidErrorCode, transport.SizeInvalidErrorCode)
}

// RefusesChunks reports an answer to an upload's PATCH that refuses the
// form of a chunked upload rather than its content (400, 405, 415 or 501
// without a session, digest or size error): the blob goes in one PUT
// instead.
func RefusesChunks(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Method != http.MethodPatch || IsSessionTrouble(err) {
		return false
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType, http.StatusNotImplemented:
		return true
	}
	return false
}

// resumeChunkSize is the size of one PATCH of a resumable upload (see
// PutUploadAt), unless the host refused a chunk as too large.
var resumeChunkSize int64 = 32 << 20

// UploadStatus asks the registry where an upload session stands (GET on
// its location, which answers 204 with "Range: 0-<last byte>" and the
// session's next Location): it returns the location to continue at and the
// offset to continue from. The answer is untrusted: the Range must be
// exactly "0-N" (N decimal, at most 18 digits), the offset at most most
// (the bytes this client sent to the session), the Location http or https.
// A session the registry does not know or refuses to resume is
// ErrUploadGone.
func (r *Repo) UploadStatus(ctx context.Context, location string, most int64) (string, int64, error) {
	req, err := r.newRequest(ctx, http.MethodGet, location, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := r.do(ctx, req)
	if err != nil {
		return "", 0, hideQuery(err)
	}
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusAccepted, http.StatusOK:
	case http.StatusNotFound, http.StatusBadRequest, http.StatusGone, http.StatusRequestedRangeNotSatisfiable:
		return "", 0, fmt.Errorf("%w (%v)", ErrUploadGone, newError(resp))
	default:
		return "", 0, newError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	off, err := parseUploadRange(resp.Header.Values("Range"))
	if err != nil {
		return "", 0, fmt.Errorf("GET upload session of %s: %w", r, err)
	}
	if off > most {
		return "", 0, fmt.Errorf("GET upload session of %s: the registry claims %d bytes, %d were sent", r, off, most)
	}
	next, err := nextLocation(resp, location)
	if err != nil {
		return "", 0, fmt.Errorf("GET upload session of %s: %w", r, err)
	}
	return next, off, nil
}

// parseUploadRange reads the one Range header of an upload session's
// status, "0-N": the session holds N+1 bytes, and the offset to continue
// from is N+1. Distribution answers "0-0" for an empty session (and, by
// the same rule, would for one byte): that is offset 0 — a session that
// really held one byte refuses the PATCH at 0, and the upload starts over.
func parseUploadRange(h []string) (int64, error) {
	if len(h) != 1 {
		return 0, fmt.Errorf("the registry answered %d Range headers, want one", len(h))
	}
	v := strings.TrimPrefix(h[0], "bytes=")
	last, ok := strings.CutPrefix(v, "0-")
	if !ok || last == "" || len(last) > 18 || strings.TrimLeft(last, "0123456789") != "" || (len(last) > 1 && last[0] == '0') {
		return 0, fmt.Errorf("malformed Range %q in the registry's answer", clipHeader(h[0]))
	}
	n, err := strconv.ParseInt(last, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed Range %q in the registry's answer", clipHeader(h[0]))
	}
	if n == 0 {
		return 0, nil
	}
	return n + 1, nil
}

func clipHeader(s string) string { return printable(s, 40) }

// nextLocation is the session location an answer gives (relative to the
// request), or location when it gives none; it must be http or https.
func nextLocation(resp *http.Response, location string) (string, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return location, nil
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("upload session without a usable Location")
	}
	return u.String(), nil
}

// KeepableSession returns the form of an upload session's location that may
// be kept beyond this run (in the ledger), if any: an http(s) address on the
// registry's own host, without user information and without query
// parameters that look like a signature or a credential (a signed URL of a
// storage service is a secret), and it is kept without its query. A
// registry that needs the query to find the session again (distribution
// 2.8's _state, an HMAC of the upload's progress) refuses it then, and the
// upload starts afresh; distribution 3 answers a status request without it
// with a fresh Location.
func (r *Repo) KeepableSession(location string) (string, bool) {
	u, err := url.Parse(location)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.Host != r.Host() || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	for k := range u.Query() {
		if signatureLike(k) {
			return "", false
		}
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.String(), true
}

// signatureLike reports a query parameter name that may carry a signature
// or a credential (S3, GCS, Azure SAS, CloudFront, tokens).
func signatureLike(name string) bool {
	n := strings.ToLower(name)
	for _, p := range []string{"x-amz-", "x-goog-", "x-ms-", "x-oss-", "x-cos-"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	switch n { // Azure SAS
	case "sig", "sv", "se", "sp", "sr", "st", "spr", "si", "skoid", "sktid", "skt", "ske", "sks", "skv":
		return true
	}
	for _, s := range []string{"signature", "token", "credential", "key", "auth", "secret", "pass", "policy", "expires"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// PutUploadAt sends a blob to an upload session from offset off on, in
// PATCH chunks (each with its Content-Range, streamed from body, which
// yields the blob's bytes from off on), then closes the session with a PUT
// carrying the digest (32 MiB PATCHes, fewer after a 413). After each PATCH the registry acknowledged, progress
// (if set) hears the session's next location and offset. Unlike PutUpload,
// a failure does not cancel the session: it returns the last location and
// offset the registry acknowledged, where UploadStatus can learn how far the
// session really got (a cut PATCH may have left some of its bytes). body
// must end after size bytes (its io.EOF is read before the PUT: a verifying
// reader checks the digest there).
func (r *Repo) PutUploadAt(ctx context.Context, location, digest string, off, size int64, body io.Reader, progress func(location string, off int64)) (string, int64, error) {
	if err := checkDigest("blob", digest); err != nil {
		return location, off, err
	}
	for off < size {
		chunk := resumeChunkSize
		if n := r.h.chunk.Load(); n > 0 {
			chunk = min(chunk, n)
		}
		n := min(chunk, size-off)
		next, err := r.patchStream(ctx, location, off, n, body)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusRequestEntityTooLarge && n > int64(minChunkSize) {
				r.h.shrinkChunk(int(n))
			}
			return location, off, err
		}
		location, off = next, off+n
		if progress != nil {
			progress(location, off)
		}
	}
	var one [1]byte
	for {
		n, err := body.Read(one[:])
		if n > 0 {
			return location, off, fmt.Errorf("the source sent more than %d bytes", size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return location, off, err
		}
	}
	req, err := r.newRequest(ctx, http.MethodPut, withDigest(location, digest), nil)
	if err != nil {
		return location, off, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.do(ctx, req)
	if err != nil {
		return location, off, hideQuery(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return location, off, newError(resp)
	}
	resp.Body.Close()
	return location, off, nil
}

// patchStream sends the next n bytes of body as one PATCH at offset off and
// returns the session's next location. The body is fenced: once patchStream
// returns, the transport reads no more of it (it may otherwise go on
// reading after a failed request).
func (r *Repo) patchStream(ctx context.Context, location string, off, n int64, body io.Reader) (string, error) {
	fb := &fencedReader{r: io.LimitReader(body, n)}
	defer fb.fence()
	req, err := r.newRequest(ctx, http.MethodPatch, location, fb)
	if err != nil {
		return "", err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
	resp, err := r.do(ctx, req)
	if err != nil {
		return "", hideQuery(err)
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
		return "", newError(resp)
	}
	resp.Body.Close()
	next, err := nextLocation(resp, location)
	if err != nil {
		return "", fmt.Errorf("PATCH %s: %w", r, err)
	}
	return next, nil
}

// fencedReader is a body the transport may read until fence.
type fencedReader struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

func (f *fencedReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, io.ErrClosedPipe
	}
	return f.r.Read(p)
}

func (f *fencedReader) fence() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

// hideQuery keeps the query of a request's URL (upload state, a signed
// URL's signature) out of a transport error's text.
func hideQuery(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &url.Error{Op: ue.Op, URL: "(upload session)", Err: ue.Err}
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
}
