// Package oci is imagesync's vocabulary of the OCI image and distribution
// specs, shared by every store and the engine: digests and their
// validation, media types, descriptors, the error classes every store
// answers with (permanent, not found), manifest parsing, the platform
// filter, and the schemes a reference's store is reached by (a registry,
// oci:DIR, oci-archive:FILE). It is a leaf: no network, no files, nothing
// of imagesync imported (as go-containerregistry's pkg/v1 or regclient's
// types).
package oci
