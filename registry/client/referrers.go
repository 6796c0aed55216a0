package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/imagesync/imagesync/oci"
)

// MediaOCIEmptyJSON is the config media type of OCI artifacts without a config.
const MediaOCIEmptyJSON = oci.MediaOCIEmptyJSON

// ErrNoReferrersAPI says the registry does not serve the OCI referrers API.
var ErrNoReferrersAPI = errors.New("registry does not serve the OCI referrers API")

// Referrers asks the OCI 1.1 referrers API for the manifests whose subject
// is digest and returns the index the registry sent (bytes, unparsed).
// A registry without the API (404 without a JSON error naming the
// repository, 400, 405, 501) gives ErrNoReferrersAPI; a repository the API
// does not know has no referrers.
func (r *Repo) Referrers(ctx context.Context, digest string) ([]byte, error) {
	if err := checkDigest("referrers subject", digest); err != nil {
		return nil, err
	}
	raw, hdr, err := r.getSmall(ctx, "/referrers/"+url.PathEscape(digest), string(MediaOCIIndex), maxManifestSize+1)
	if err != nil {
		var re *Error
		if errors.As(err, &re) {
			switch re.Status {
			case http.StatusNotFound:
				if re.HasCode("NAME_UNKNOWN") {
					// The API answered: the repository does not exist (yet), so nothing refers to it.
					return []byte(`{"schemaVersion":2,"mediaType":"` + MediaOCIIndex + `","manifests":[]}`), nil
				}
				return nil, ErrNoReferrersAPI
			case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				return nil, ErrNoReferrersAPI
			}
		}
		return nil, err
	}
	if len(raw) > maxManifestSize {
		return nil, Permanent(fmt.Errorf("referrers of %s@%s: answer larger than %d bytes", r, digest, maxManifestSize))
	}
	if mt := mediaType(hdr); mt != "" && mt != MediaOCIIndex && mt != "application/json" {
		return nil, ErrNoReferrersAPI // an HTML page or the like: not the API
	}
	return raw, nil
}
