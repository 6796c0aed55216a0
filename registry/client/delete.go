package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DeleteManifest deletes ref (a tag or a digest) from the repository:
// DELETE /v2/<name>/manifests/<ref>. A digest removes the manifest and every
// tag pointing to it; a tag removes only the tag, where the registry
// supports that (distribution 3, Harbor, most cloud registries; 2.8 does
// not: see IsUnsupported). A registry that refuses deletes altogether
// (405, or 401/403 for the delete scope) gets a DeleteRefusedError.
func (r *Repo) DeleteManifest(ctx context.Context, ref string) error {
	if err := checkRef("manifest reference", ref); err != nil {
		return err
	}
	req, err := r.newRequest(ctx, http.MethodDelete, "/manifests/"+url.PathEscape(ref), nil)
	if err != nil {
		return err
	}
	d := *r
	d.scope = "repository:" + r.Name + ":delete"
	resp, err := d.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	e := newError(resp)
	if ValidTag(ref) && (e.Status == http.StatusBadRequest || e.Status == http.StatusMethodNotAllowed) && e.HasCode(transport.DigestInvalidErrorCode, transport.UnsupportedErrorCode) {
		return &tagDeleteUnsupported{err: e}
	}
	if e.Status == http.StatusMethodNotAllowed || IsUnauthorized(e) {
		return Permanent(&DeleteRefusedError{Repo: r.String(), Status: e.Status, Err: e})
	}
	return e
}

// tagDeleteUnsupported is a registry that deletes manifests only by digest.
type tagDeleteUnsupported struct{ err error }

func (e *tagDeleteUnsupported) Error() string {
	return "the registry deletes manifests only by digest: " + e.err.Error()
}
func (e *tagDeleteUnsupported) Unwrap() error { return e.err }

// IsTagDeleteUnsupported reports a registry that refused to delete a tag
// (distribution 2.8: "unsupported" / digest invalid): delete by digest.
func IsTagDeleteUnsupported(err error) bool {
	_, ok := err.(*tagDeleteUnsupported)
	return ok
}

// DeleteRefusedError is a registry that does not let these credentials
// delete (distribution without storage.delete.enabled answers 405).
type DeleteRefusedError struct {
	Repo   string
	Status int
	Err    error
}

func (e *DeleteRefusedError) Error() string {
	return fmt.Sprintf("%s refuses to delete (%d %s): the registry has deletes disabled (distribution: storage.delete.enabled) or these credentials lack the delete permission", e.Repo, e.Status, http.StatusText(e.Status))
}

func (e *DeleteRefusedError) Unwrap() error { return e.Err }
