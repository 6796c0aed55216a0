package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"strings"
)

// Everything a registry or a layout answers is untrusted input: tags from
// tags/list, digests from headers and manifests, repository names from the
// ledger. Nothing of it becomes part of a URL path or a file name before it
// passed these checks.

// ErrInvalidReference marks a tag, digest or repository name that does not
// follow the distribution grammar. It is permanent: no retry makes it valid.
var ErrInvalidReference = errors.New("invalid reference")

// Digest returns the sha256 digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DigestWith returns the digest of b with the algorithm of like (sha256 or
// sha512).
func DigestWith(like string, b []byte) string {
	if strings.HasPrefix(like, "sha512:") {
		sum := sha512.Sum512(b)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	return Digest(b)
}

// maxTagLength is the distribution spec's limit (128 characters).
const maxTagLength = 128

// ValidTag reports whether s matches the distribution spec's tag grammar:
// [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
func ValidTag(s string) bool {
	if s == "" || len(s) > maxTagLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// digestHexLength is the hex length of each supported algorithm.
var digestHexLength = map[string]int{"sha256": 64, "sha512": 128}

// ValidDigest reports whether s is "<algorithm>:<hex>" with a supported
// algorithm (sha256, sha512) and exactly its length of lower-case hex.
func ValidDigest(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	n, known := digestHexLength[alg]
	if !ok || !known || len(hex) != n {
		return false
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxRepositoryLength bounds a repository name (distribution: 255 with the host).
const maxRepositoryLength = 255

// ValidRepository reports whether s follows the reference grammar for a
// repository path: lower-case components of [a-z0-9] joined by ".", "_",
// "__" or runs of "-", separated by "/".
func ValidRepository(s string) bool {
	if s == "" || len(s) > maxRepositoryLength {
		return false
	}
	for _, comp := range strings.Split(s, "/") {
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	if c == "" {
		return false
	}
	alnum := func(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') }
	if !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if alnum(c[i]) {
			i++
			continue
		}
		// a separator: ".", "_", "__", or one or more "-"
		j := i
		switch c[i] {
		case '.':
			j++
		case '_':
			j++
			if j < len(c) && c[j] == '_' {
				j++
			}
		case '-':
			for j < len(c) && c[j] == '-' {
				j++
			}
		default:
			return false
		}
		if j >= len(c) || !alnum(c[j]) {
			return false
		}
		i = j
	}
	return true
}

// ValidReference reports whether ref is a valid tag or digest.
func ValidReference(ref string) bool { return ValidTag(ref) || ValidDigest(ref) }

// Clip shortens untrusted text for a message.
func Clip(s string) string {
	const max = 160
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
