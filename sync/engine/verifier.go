package engine

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/imagesync/imagesync/oci"
)

// verifier passes a blob through while hashing it; at the end it fails the
// read (and so the PUT carrying it) when the digest or size is wrong.
type verifier struct {
	r        io.Reader
	h        hash.Hash
	alg      string
	want     string
	size     int64
	n        int64
	err      error
	done     bool // the whole blob was read and matched
	progress func(int64)
}

func newVerifier(r io.Reader, digest string, size int64) (*verifier, error) {
	if !oci.ValidDigest(digest) {
		return nil, oci.Permanent(fmt.Errorf("unsupported or malformed digest %q", oci.Clip(digest)))
	}
	alg, _, _ := strings.Cut(digest, ":")
	h := sha256.New()
	if alg == "sha512" {
		h = sha512.New()
	}
	return &verifier{r: r, h: h, alg: alg, want: digest, size: size}, nil
}

var errDigestMismatch = errors.New("digest mismatch")

func (v *verifier) Read(p []byte) (int, error) {
	if v.done {
		// Finished at the manifest's size. The HTTP transport reads a body
		// once more after its Content-Length, and may do so after the
		// registry has answered and the caller has read n and err: this read
		// must not write them.
		return 0, io.EOF
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.progress != nil && n > 0 {
		v.progress(int64(n))
	}
	if v.size >= 0 && v.n > v.size {
		v.err = oci.Permanent(fmt.Errorf("source sent more than %d bytes", v.size))
		return n, v.err
	}
	if v.size >= 0 && v.n == v.size && err == nil {
		// All the bytes the manifest names are here: one more read says
		// whether the source has more; a source that breaks now has still
		// sent the whole blob, which the digest decides.
		var one [1]byte
		if k, _ := io.ReadAtLeast(v.r, one[:], 1); k > 0 {
			v.err = oci.Permanent(fmt.Errorf("source sent more than %d bytes", v.size))
			return n, v.err
		}
		err = io.EOF
	}
	if err == io.EOF {
		got := v.alg + ":" + hex.EncodeToString(v.h.Sum(nil))
		if got != v.want {
			v.err = oci.Permanent(fmt.Errorf("%w: source blob hashes to %s%s", errDigestMismatch, got, readFrom(v.r)))
			return n, v.err
		}
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("source blob ended after %d of %d bytes", v.n, v.size)
			return n, v.err
		}
		v.done = true
	} else if err != nil {
		v.err = err
	}
	return n, err
}
