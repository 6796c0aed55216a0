package oci

import "strings"

// Scheme is how the store of a reference is reached: a registry (the
// empty scheme), an OCI image layout directory (oci:DIR) or a tar archive
// of one (oci-archive:FILE). A reference carries it in its registry part:
// "oci:DIR", "oci-archive:FILE", or a registry host.
type Scheme string

const (
	SchemeRegistry Scheme = ""
	SchemeLayout   Scheme = "oci:"
	SchemeArchive  Scheme = "oci-archive:"
)

// SchemeOf splits the registry part of a reference into its scheme and the
// rest: the registry host, or the layout's path.
func SchemeOf(registry string) (Scheme, string) {
	switch {
	case strings.HasPrefix(registry, string(SchemeArchive)):
		return SchemeArchive, registry[len(SchemeArchive):]
	case strings.HasPrefix(registry, string(SchemeLayout)):
		return SchemeLayout, registry[len(SchemeLayout):]
	}
	return SchemeRegistry, registry
}
