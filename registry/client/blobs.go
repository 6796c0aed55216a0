package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
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
