package oci

import "github.com/google/go-containerregistry/pkg/v1/types"

// MediaType is a manifest's or blob's media type (go-containerregistry's
// type, so that its predicates IsIndex, IsSchema1… apply).
type MediaType = types.MediaType

// Manifest media types imagesync reads and writes. Schema 1 is named only to
// recognise it and say it is unsupported.
const (
	MediaOCIIndex      = types.OCIImageIndex
	MediaOCIManifest   = types.OCIManifestSchema1
	MediaDockerList    = types.DockerManifestList
	MediaDockerV2      = types.DockerManifestSchema2
	MediaDockerSchema1 = types.DockerManifestSchema1
	MediaDockerSigned  = types.DockerManifestSchema1Signed
)

// MediaOCIEmptyJSON is the config media type of OCI artifacts without a config.
const MediaOCIEmptyJSON = "application/vnd.oci.empty.v1+json"

// Descriptor is what a store tells of a manifest it holds (a HEAD or GET).
type Descriptor struct {
	MediaType MediaType
	Digest    string
	Size      int64
}
