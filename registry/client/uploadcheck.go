package client

import (
	"context"
	"net/url"
)

// CheckUpload asks for a blob with one POST that both checks and opens: a
// mount of digest from the repository from — or from r itself when from is
// empty, which distribution and most registries accept — answers 201 when
// the blob is (now) present, else 202 with an upload session (location),
// as a HEAD followed by a POST would, in one request. A registry that does
// not mount answers 202 even for a blob it holds, so callers use this only
// where a mount of a present blob was seen answering 201. A mount refused
// with an error falls back to a plain session.
func (r *Repo) CheckUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error) {
	if from != "" && from != r.Name {
		return r.StartUpload(ctx, digest, from)
	}
	if err := checkDigest("blob", digest); err != nil {
		return "", false, err
	}
	loc, mounted, err := r.startUpload(ctx, "/blobs/uploads/?mount="+url.QueryEscape(digest)+"&from="+url.QueryEscape(r.Name), nil)
	if err == nil || ctx.Err() != nil {
		return loc, mounted, err
	}
	if r.c.log != nil {
		r.c.log.Debug("mount check refused: uploading", "digest", digest, "into", r.String(), "error", err)
	}
	return r.startUpload(ctx, "/blobs/uploads/", nil)
}
