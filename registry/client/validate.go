package client

import (
	"fmt"

	"github.com/imagesync/imagesync/oci"
)

// Everything a registry answers is untrusted input: tags from tags/list,
// digests from headers and manifests, repository names from the ledger.
// Nothing of it becomes part of a URL path before it passed these checks
// (the grammar is oci's).

// ErrInvalidReference marks a tag, digest or repository name that does not
// follow the distribution grammar (oci.ErrInvalidReference).
var ErrInvalidReference = oci.ErrInvalidReference

// ValidTag reports whether s matches the distribution spec's tag grammar.
func ValidTag(s string) bool { return oci.ValidTag(s) }

// ValidDigest reports whether s is a sha256 or sha512 digest.
func ValidDigest(s string) bool { return oci.ValidDigest(s) }

// ValidRepository reports whether s follows the reference grammar for a
// repository path.
func ValidRepository(s string) bool { return oci.ValidRepository(s) }

// ValidReference reports whether ref is a valid tag or digest.
func ValidReference(ref string) bool { return oci.ValidReference(ref) }

// checkRef returns a permanent error when ref is neither a valid tag nor a
// valid digest.
func checkRef(what, ref string) error {
	if ValidReference(ref) {
		return nil
	}
	return Permanent(fmt.Errorf("%s %q: %w (not a tag of [A-Za-z0-9_][A-Za-z0-9._-]{0,127} nor a sha256/sha512 digest)", what, clip(ref), ErrInvalidReference))
}

// checkDigest returns a permanent error when d is not a valid digest.
func checkDigest(what, d string) error {
	if ValidDigest(d) {
		return nil
	}
	return Permanent(fmt.Errorf("%s %q: %w (not a sha256 or sha512 digest)", what, clip(d), ErrInvalidReference))
}

// clip shortens untrusted text for an error message.
func clip(s string) string { return oci.Clip(s) }
