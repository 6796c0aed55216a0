package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// Manifest media types imagesync asks for (oci's). Schema 1 is asked for
// only to recognise it and say it is unsupported.
const (
	MediaOCIIndex      = oci.MediaOCIIndex
	MediaOCIManifest   = oci.MediaOCIManifest
	MediaDockerList    = oci.MediaDockerList
	MediaDockerV2      = oci.MediaDockerV2
	MediaDockerSchema1 = oci.MediaDockerSchema1
	MediaDockerSigned  = oci.MediaDockerSigned
)

var acceptManifests = strings.Join([]string{string(MediaOCIIndex), string(MediaOCIManifest), string(MediaDockerList), string(MediaDockerV2), string(MediaDockerSigned), string(MediaDockerSchema1)}, ", ")

// maxManifestSize bounds a manifest read (distribution's own limit is 4 MiB).
const maxManifestSize = 8 << 20

// Descriptor is what a manifest HEAD or GET tells (oci.Descriptor).
type Descriptor = oci.Descriptor

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
			if r.c.observer != nil {
				r.c.observer.Retry(r.h.reg.RegistryStr())
			}
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
func (r *Repo) PutManifest(ctx context.Context, ref string, mediaType types.MediaType, raw []byte) error {
	if err := checkRef("manifest reference", ref); err != nil {
		return err
	}
	req, err := r.newRequest(ctx, http.MethodPut, "/manifests/"+url.PathEscape(ref), bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", string(mediaType))
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

func mediaType(h http.Header) types.MediaType {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return types.MediaType(strings.TrimSpace(ct))
}

// sniffMediaType reads the mediaType field of an OCI/Docker manifest.
func sniffMediaType(raw []byte) types.MediaType {
	var m struct {
		MediaType     types.MediaType   `json:"mediaType"`
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
