package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

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
		return r.mount(ctx, digest, from, []string{from})
	}
	return r.startUpload(ctx, "/blobs/uploads/", nil)
}

// CheckUpload asks for a blob with one POST that both checks and opens: a
// mount of digest from the repository from — or from r itself when from is
// empty, which distribution and most registries accept — answers 201 when
// the blob is (now) present, else 202 with an upload session (location),
// as a HEAD followed by a POST would, in one request. A registry that does
// not mount answers 202 even for a blob it holds, so callers use this only
// where a mount of a present blob was seen answering 201.
func (r *Repo) CheckUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error) {
	if from != "" && from != r.Name {
		return r.StartUpload(ctx, digest, from)
	}
	if err := checkDigest("blob", digest); err != nil {
		return "", false, err
	}
	return r.mount(ctx, digest, r.Name, nil)
}

// mount POSTs a mount of digest from the repository from (alsoPull: the
// scopes it needs beyond r's); a mount refused with an error falls back to
// a plain session.
func (r *Repo) mount(ctx context.Context, digest, from string, alsoPull []string) (location string, mounted bool, err error) {
	loc, mounted, err := r.startUpload(ctx, "/blobs/uploads/?mount="+url.QueryEscape(digest)+"&from="+url.QueryEscape(from), alsoPull)
	if err == nil || ctx.Err() != nil {
		return loc, mounted, err
	}
	if r.c.log != nil {
		r.c.log.Debug("mount refused: uploading instead", "digest", digest, "into", r.String(), "from", from, "error", err)
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
		return hideQuery(err)
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
		return hideQuery(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return newError(resp)
	}
	resp.Body.Close()
	return nil
}

// patch sends one chunk at offset off and returns the session's next location
// (patchStream, from memory).
func (r *Repo) patch(ctx context.Context, location string, off int64, part []byte) (string, error) {
	return r.patchStream(ctx, location, off, int64(len(part)), bytes.NewReader(part))
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
