package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// Repo is one repository's view of a layout: what the engine reads from and
// writes to, like a registry repository.
type Repo struct {
	l    *Layout
	name string
}

// String returns "oci:DIR:name" (or "oci-archive:FILE:name").
func (r *Repo) String() string {
	s := "oci:"
	if r.l.archive {
		s = "oci-archive:"
	}
	s += r.l.path
	if r.name != "" {
		s += ":" + r.name
	}
	return s
}

// Host identifies the layout: every repository of one layout shares its blobs.
func (r *Repo) Host() string {
	if r.l.archive {
		return "oci-archive:" + r.l.abs
	}
	return "oci:" + r.l.abs
}

// Path returns the repository name inside the layout.
func (r *Repo) Path() string { return r.name }

func (r *Repo) fullName(ref string) string {
	if strings.HasPrefix(ref, "@") {
		return r.name + ref
	}
	if r.name == "" {
		return ref
	}
	return r.name + ":" + ref
}

func isDigest(ref string) bool { return strings.HasPrefix(ref, "sha256:") }

// HeadManifest resolves a tag, a digest (any manifest the layout holds) or
// "@digest" (an image named by its digest).
func (r *Repo) HeadManifest(ctx context.Context, ref string) (oci.Descriptor, error) {
	if isDigest(ref) {
		_, d, err := r.GetManifest(ctx, ref)
		return d, err
	}
	what := r.String() + refSep(ref) + strings.TrimPrefix(ref, "@")
	e, err := r.l.find(r.fullName(ref))
	if err != nil {
		return oci.Descriptor{}, err
	}
	if e == nil {
		return oci.Descriptor{}, missing(what)
	}
	d := e.desc
	// A name counts only for a whole image: a blob deleted (or a manifest
	// damaged) since it was written makes it missing, so that a copy into
	// the layout writes it again and a copy out of it stops before pushing.
	if why := r.l.incomplete(d.Digest, map[string]bool{}); why != "" {
		return oci.Descriptor{}, oci.Permanent(&notFound{what: what, why: "incomplete: " + why})
	}
	return oci.Descriptor{MediaType: types.MediaType(d.MediaType), Digest: d.Digest, Size: d.Size}, nil
}

// incomplete walks an image from its manifest: every child manifest must be
// present with the right bytes, every config and layer present (not
// re-hashed: verify --deep does that). It says what is missing, or "".
func (l *Layout) incomplete(digest string, seen map[string]bool) string {
	if seen[digest] {
		return ""
	}
	seen[digest] = true
	raw, err := l.readManifest(digest)
	if oci.IsNotFound(err) {
		return "manifest " + digest + " is missing"
	}
	if err != nil {
		return "manifest " + digest + ": " + err.Error()
	}
	children, blobs, err := references(raw)
	if err != nil {
		return "manifest " + digest + " is not JSON"
	}
	for _, c := range children {
		if why := l.incomplete(c, seen); why != "" {
			return why
		}
	}
	for _, b := range blobs {
		if seen[b] {
			continue
		}
		seen[b] = true
		if ok, err := l.hasBlob(b); err != nil {
			return "blob " + b + ": " + err.Error()
		} else if !ok {
			return "blob " + b + " is missing"
		}
	}
	return ""
}

func refSep(ref string) string {
	if strings.HasPrefix(ref, "@") || isDigest(ref) {
		return "@"
	}
	return ":"
}

// GetManifest returns a manifest's bytes, checked against their digest.
func (r *Repo) GetManifest(ctx context.Context, ref string) ([]byte, oci.Descriptor, error) {
	digest, mt := ref, ""
	if !isDigest(ref) {
		d, err := r.HeadManifest(ctx, ref)
		if err != nil {
			return nil, oci.Descriptor{}, err
		}
		digest, mt = d.Digest, string(d.MediaType)
	}
	raw, err := r.l.readManifest(digest)
	if err != nil {
		return nil, oci.Descriptor{}, err
	}
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	return raw, oci.Descriptor{MediaType: types.MediaType(mt), Digest: digest, Size: int64(len(raw))}, nil
}

// PutManifest stores a manifest; under a tag or "@digest" it also names it
// in index.json (after the manifest is stored, so a name never points at
// something missing).
func (r *Repo) PutManifest(ctx context.Context, ref string, mediaType types.MediaType, raw []byte) error {
	digest := oci.Digest(raw)
	if strings.HasPrefix(ref, "@") && ref[1:] != digest {
		return oci.Permanent(fmt.Errorf("%s: manifest named %s has the digest %s", r, ref[1:], digest))
	}
	if err := r.l.ensure(); err != nil {
		return err
	}
	if _, err := r.l.readManifest(digest); err != nil { // absent, or damaged: (re)write it
		if _, err := r.l.writeBlob(ctx, digest, int64(len(raw)), bytes.NewReader(raw)); err != nil {
			return err
		}
	}
	if isDigest(ref) {
		return nil
	}
	return r.l.setName(r.fullName(ref), descriptor{MediaType: string(mediaType), Digest: digest, Size: int64(len(raw))})
}

// Tags returns the tags of this repository's images in the layout (every
// name was checked when the layout was read: none is invalid).
func (r *Repo) Tags(ctx context.Context) (tags, invalid []string, err error) {
	names, _ := r.l.Names()
	for _, n := range names {
		if r.name == "" {
			if !strings.ContainsAny(n, "/:@") {
				tags = append(tags, n)
			}
			continue
		}
		if t, ok := strings.CutPrefix(n, r.name+":"); ok && !strings.ContainsAny(t, "/@") {
			tags = append(tags, t)
		}
	}
	return tags, nil, nil
}

// HeadBlob reports whether the layout holds the blob.
func (r *Repo) HeadBlob(ctx context.Context, digest string) (bool, error) { return r.l.hasBlob(digest) }

// GetBlob opens a blob. Its bytes are not checked here: the engine hashes
// every blob it streams, and fails the copy when they do not match.
func (r *Repo) GetBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	rc, size, where, err := r.l.openBlob(digest)
	if err != nil {
		return nil, 0, err
	}
	return &namedReader{ReadCloser: rc, where: where}, size, nil
}

// namedReader names the file in a read error, and in the engine's digest
// mismatch (which it reports as the read's error).
type namedReader struct {
	io.ReadCloser
	where string
}

func (n *namedReader) Read(p []byte) (int, error) {
	k, err := n.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", n.where, err)
	}
	return k, err
}

// Where says which file a blob read from the layout comes from.
func (n *namedReader) Where() string { return n.where }

// StartUpload is the registry's upload session: a blob the layout holds
// counts as mounted.
func (r *Repo) StartUpload(ctx context.Context, digest, from string) (string, bool, error) {
	ok, err := r.l.hasBlob(digest)
	if err != nil || ok {
		return "", ok, err
	}
	return "layout", false, nil
}

// PutUpload writes a blob (see writeBlob).
func (r *Repo) PutUpload(ctx context.Context, location, digest string, size int64, body io.Reader) error {
	if err := r.l.ensure(); err != nil {
		return err
	}
	_, err := r.l.writeBlob(ctx, digest, size, body)
	return err
}

// CancelUpload has nothing to cancel: a layout write that did not finish
// left only a temporary file, already removed.
func (r *Repo) CancelUpload(ctx context.Context, location string) {}

// sniffMediaType reads the mediaType field of a manifest, or guesses an OCI
// one from its fields.
func sniffMediaType(raw []byte) string {
	var m struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(raw, &m)
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return string(oci.MediaOCIIndex)
	default:
		return string(oci.MediaOCIManifest)
	}
}
