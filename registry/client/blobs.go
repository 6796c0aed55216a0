package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

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

// GetBlobFrom opens the blob from offset on, to resume a read cut midway;
// size is the blob's size (from its descriptor). It asks for "Range:
// bytes=offset-(size-1)", the closed form of "bytes=offset-" (which
// go-containerregistry's registry refuses with a 416). The answer is
// untrusted and checked: a 206 must carry a Content-Range
// "bytes offset-(size-1)/size" (or ".../*") and, if it says one, a
// Content-Length of size-offset. A 200 (a registry or storage that ignores
// Range) must be the whole blob: from is then 0, and the caller skips to
// offset itself; otherwise from is offset. A 416 or an answer that fails
// the checks is an error worth a fresh read, not a permanent one; other
// statuses are classified as usual. Errors name the registry's URL, never
// the storage one a redirect led to.
func (r *Repo) GetBlobFrom(ctx context.Context, digest string, offset, size int64) (rc io.ReadCloser, from int64, err error) {
	if err := checkDigest("blob", digest); err != nil {
		return nil, 0, err
	}
	if offset <= 0 || offset >= size {
		return nil, 0, fmt.Errorf("blob %s: no range to resume from byte %d of %d", digest, offset, size)
	}
	req, err := r.newRequest(ctx, http.MethodGet, "/blobs/"+url.PathEscape(digest), nil)
	if err != nil {
		return nil, 0, err
	}
	// The closed form: some registries (go-containerregistry's) refuse
	// "bytes=offset-" with a 416.
	req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(size-1, 10))
	target := "GET " + req.URL.Host + req.URL.Path
	resp, err := r.do(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	bad := func(format string, a ...any) (io.ReadCloser, int64, error) {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("%s from byte %d: %s", target, offset, fmt.Sprintf(format, a...))
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, end, total, ok := parseContentRange(cr)
		switch {
		case !ok:
			return bad("206 with Content-Range %q", clip(cr))
		case start != offset:
			return bad("206 for bytes from %d", start)
		case end != size-1 || (total >= 0 && total != size):
			return bad("206 with Content-Range %q for a blob of %d bytes", clip(cr), size)
		case resp.ContentLength >= 0 && resp.ContentLength != size-offset:
			return bad("206 with Content-Length %d, want %d", resp.ContentLength, size-offset)
		}
		return resp.Body, offset, nil
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return bad("200 with Content-Length %d for a blob of %d bytes", resp.ContentLength, size)
		}
		return resp.Body, 0, nil
	case http.StatusRequestedRangeNotSatisfiable:
		return bad("416: the registry refused the range")
	}
	return nil, 0, newError(resp)
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*": then
// total is -1). ok is false for anything else, including a header too long
// to be one and numbers out of order.
func parseContentRange(s string) (start, end, total int64, ok bool) {
	if len(s) > 100 {
		return 0, 0, 0, false
	}
	unit, rest, found := strings.Cut(s, " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var okA, okB bool
	start, okA = num(a)
	end, okB = num(b)
	total = -1
	if size != "*" {
		var okT bool
		if total, okT = num(size); !okT || end >= total {
			return 0, 0, 0, false
		}
	}
	return start, end, total, okA && okB && start <= end
}
