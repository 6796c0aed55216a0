package oci

import (
	"encoding/json"
	"fmt"
)

// Entry is the part of an index's manifests entry imagesync reads; the
// entry's bytes are kept as they are.
type Entry struct {
	MediaType MediaType `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	Platform  *Platform `json:"platform,omitempty"`
}

// Blob is a config or layer descriptor of an image manifest.
type Blob struct {
	MediaType MediaType `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	URLs      []string  `json:"urls,omitempty"` // a foreign layer: never fetched
}

// ImageManifest is the part of an image manifest imagesync reads.
type ImageManifest struct {
	Config Blob   `json:"config"`
	Layers []Blob `json:"layers"`
}

// ParseIndex reads an index's entries; every digest must be valid before it
// is used in a URL or a path.
func ParseIndex(raw []byte) ([]Entry, error) {
	var idx struct {
		Manifests []Entry `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, Permanent(fmt.Errorf("parsing index: %w", err))
	}
	for _, c := range idx.Manifests {
		if !ValidDigest(c.Digest) {
			return nil, Permanent(fmt.Errorf("index lists a child with the digest %q: %w", Clip(c.Digest), ErrInvalidReference))
		}
	}
	return idx.Manifests, nil
}

// ParseImage reads an image manifest's config and layers; every digest it
// names must be a valid digest before it is used.
func ParseImage(raw []byte) (ImageManifest, error) {
	var m ImageManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, Permanent(fmt.Errorf("parsing manifest: %w", err))
	}
	for i, b := range append([]Blob{m.Config}, m.Layers...) {
		if i > 0 && len(b.URLs) > 0 {
			continue // foreign layer: never fetched
		}
		if !ValidDigest(b.Digest) {
			return m, Permanent(fmt.Errorf("manifest names a blob with the digest %q: %w", Clip(b.Digest), ErrInvalidReference))
		}
		if b.Size < 0 {
			return m, Permanent(fmt.Errorf("manifest gives blob %s a negative size", b.Digest))
		}
	}
	return m, nil
}

// ImageBlobs lists the blobs of an image manifest that are copied: its
// config and its layers, except foreign layers (they stay where their URLs
// point).
func ImageBlobs(raw []byte) ([]Blob, error) {
	m, err := ParseImage(raw)
	if err != nil {
		return nil, err
	}
	blobs := []Blob{m.Config}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			continue
		}
		blobs = append(blobs, l)
	}
	return blobs, nil
}
