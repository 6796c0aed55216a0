// Package layout stores images in OCI image layouts (a directory with
// oci-layout, index.json and blobs/sha256/…) and in tar archives of one, as
// the engine's sources and destinations next to registries.
//
// Every image a layout holds is named in index.json by the annotation
// org.opencontainers.image.ref.name. Blobs and manifests are stored once by
// digest, byte for byte. Writing is crash-safe: a blob goes to a temporary
// file that is hashed while written and renamed into place only when its
// digest and size match, and index.json is replaced atomically after the
// image's manifest, so a layout that was killed mid-run is still valid and
// names only complete images. An archive is written as a layout in a staging
// directory next to it (FILE.partial), then as a temporary tar renamed over
// FILE when the run ends; a killed run resumes from the staging directory.
package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/registry/client"
)

// Layout file names and the annotation that names an image.
const (
	LayoutFile     = "oci-layout"
	IndexFile      = "index.json"
	AnnotationName = "org.opencontainers.image.ref.name"
	layoutVersion  = `{"imageLayoutVersion":"1.0.0"}`
	maxIndexSize   = 64 << 20
	maxManifest    = 8 << 20
)

// ConfigError is a layout that cannot be used at all (not a layout, no
// index.json, an unreadable archive): the run's configuration is wrong.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// notFound is a manifest or blob the layout does not hold, or an image
// it names but does not hold whole (why says what is missing).
type notFound struct{ what, why string }

func (e *notFound) Error() string {
	if e.why != "" {
		return e.what + ": " + e.why
	}
	return e.what + ": not found"
}
func (e *notFound) NotFound() bool { return true }

// Why says what an image the layout names lacks ("" when it is not named).
func (e *notFound) Why() string { return e.why }

// missing is the error for something a layout does not hold: not found,
// and not worth a retry.
func missing(what string) error { return client.Permanent(&notFound{what: what}) }

// Set holds the layouts of one run, one per path, so that every job writing
// to a layout shares its index.
type Set struct {
	mu sync.Mutex
	m  map[string]*Layout
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{m: map[string]*Layout{}} }

// Open returns the layout at path (a directory, or a tar archive when
// archive is set), reading it if it exists. must says it has to exist (a
// source). A path that exists but is not a layout is a *ConfigError.
func (s *Set) Open(path string, archive, must bool) (*Layout, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{Path: path, Err: err}
	}
	key := abs
	if archive {
		key = "archive:" + abs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[key]
	if !ok {
		l = &Layout{path: path, abs: abs, archive: archive}
		if err := l.load(); err != nil {
			return nil, err
		}
		s.m[key] = l
	}
	if must && !l.exists {
		return nil, &ConfigError{Path: path, Err: errors.New("no such OCI image layout")}
	}
	return l, nil
}

// Finish writes every archive that this run added to (see Layout.Finish)
// and returns the errors by layout path.
func (s *Set) Finish() map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := map[string]error{}
	for _, l := range s.m {
		if err := l.Finish(); err != nil {
			errs[l.path] = err
		}
	}
	return errs
}

// Close releases every layout's open files.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.m {
		l.close()
	}
}

// Layout is one OCI image layout, or an archive of one.
type Layout struct {
	path    string // as the rules wrote it
	abs     string
	archive bool
	exists  bool

	// dir is where blobs and index.json are read and written: the layout
	// itself, or an archive's staging directory. For an archive, base is the
	// existing archive, read in place.
	dir  string
	base *tarLayout

	mu      sync.Mutex
	ready   bool // dir holds a valid (possibly empty) layout
	index   *indexDoc
	staged  *indexDoc // archive: the names written to the staging directory
	written bool      // archive: the staging directory holds something
	cleaned bool      // stale temporary files were looked for
	restage bool      // archive: the staging directory is unusable, remove it first
	lock    *flock.Flock
}

func (l *Layout) load() error {
	if st, err := os.Stat(l.abs); err == nil {
		switch {
		case l.archive && st.IsDir():
			return &ConfigError{Path: l.path, Err: fmt.Errorf("is a directory: write oci:%s for an image layout directory", l.path)}
		case !l.archive && !st.IsDir():
			return &ConfigError{Path: l.path, Err: fmt.Errorf("is a file: write oci-archive:%s for a tar archive of an image layout", l.path)}
		}
	}
	if !l.archive {
		l.dir = l.abs
		ok, err := l.loadDir(l.dir)
		l.exists = ok
		return err
	}
	l.dir = l.abs + ".partial"
	if _, err := os.Stat(l.abs); err == nil {
		t, err := openTar(l.abs)
		if err != nil {
			return &ConfigError{Path: l.path, Err: err}
		}
		l.base, l.exists = t, true
		l.index = t.index.clone()
	} else if !errors.Is(err, os.ErrNotExist) {
		return &ConfigError{Path: l.path, Err: err}
	}
	if l.index == nil {
		l.index = newIndex()
	}
	// A staging directory left by a killed run: resume from it.
	staged, err := readLayoutDir(l.dir)
	switch {
	case err == nil && staged != nil:
		l.staged, l.ready, l.written = staged, true, true
		for _, e := range staged.entries {
			if e.name != "" {
				l.index.set(e.name, e.raw, e.desc)
			}
		}
	case err != nil:
		// Killed before it was a layout: started again on the first write
		// (never removed by a run that only reads, like plan).
		l.restage = true
	}
	return nil
}

// loadDir reads a layout directory. A missing or empty directory is no
// layout yet (ok false, no error).
func (l *Layout) loadDir(dir string) (ok bool, err error) {
	idx, err := readLayoutDir(dir)
	if err != nil {
		return false, &ConfigError{Path: l.path, Err: err}
	}
	if idx == nil {
		l.index = newIndex()
		return false, nil
	}
	l.index, l.ready = idx, true
	return true, nil
}

// readLayoutDir reads oci-layout and index.json of dir: nil, nil when dir
// is missing or empty; an error when it is something else than a layout.
func readLayoutDir(dir string) (*indexDoc, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	lb, err := os.ReadFile(filepath.Join(dir, LayoutFile))
	if errors.Is(err, os.ErrNotExist) {
		if onlySkeleton(entries) {
			return nil, nil // a run was killed while creating it: not a layout yet
		}
		return nil, fmt.Errorf("not an OCI image layout (no %s file)", LayoutFile)
	}
	if err != nil {
		return nil, err
	}
	if err := checkLayoutFile(lb); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("not a valid OCI image layout: %s is missing", IndexFile)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readIndex(f)
}

// onlySkeleton reports whether a directory holds nothing but what creating
// a layout writes before its oci-layout file: blobs/, index.json, and
// temporary files.
func onlySkeleton(entries []os.DirEntry) bool {
	for _, e := range entries {
		switch n := e.Name(); {
		case n == "blobs" && e.IsDir(), n == IndexFile, strings.HasPrefix(n, tempPrefix):
		default:
			return false
		}
	}
	return true
}

func checkLayoutFile(b []byte) error {
	var v struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Version == "" {
		return fmt.Errorf("%s is not an OCI layout file", LayoutFile)
	}
	if !strings.HasPrefix(v.Version, "1.") {
		return fmt.Errorf("%s: unsupported image layout version %q", LayoutFile, v.Version)
	}
	return nil
}

func readIndex(r io.Reader) (*indexDoc, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IndexFile, err)
	}
	if len(b) > maxIndexSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", IndexFile, maxIndexSize)
	}
	idx, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IndexFile, err)
	}
	return idx, nil
}

// Unnamed is an index.json entry without a name.
type Unnamed struct {
	Position int // 1-based
	Digest   string
}

// Names returns the names of the images in index.json, in index order, and
// the entries without one.
func (l *Layout) Names() (names []string, unnamed []Unnamed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.index.entries {
		if e.name == "" {
			unnamed = append(unnamed, Unnamed{Position: i + 1, Digest: e.desc.Digest})
			continue
		}
		names = append(names, e.name)
	}
	return names, unnamed
}

// Repo returns the view of the layout that the engine copies to and from
// for one repository: name is the image's repository with its registry
// ("docker.io/library/nginx"), or "" for images named by a bare tag.
func (l *Layout) Repo(name string) *Repo { return &Repo{l: l, name: name} }

// ensure makes dir a layout, creating it on the first write.
func (l *Layout) ensure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		// One writer per layout: a second run would race on index.json.
		// The lock file sits next to the layout, so the layout holds only
		// what the format says; the OS releases it if the run dies.
		if err := os.MkdirAll(filepath.Dir(l.abs), 0o755); err != nil {
			return err
		}
		lock := flock.New(l.abs + ".lock")
		ok, err := lock.TryLock()
		if err != nil {
			return fmt.Errorf("%s: locking: %w", l.path, err)
		}
		if !ok {
			return client.Permanent(fmt.Errorf("%s is being written by another imagesync run (lock %s)", l.path, l.abs+".lock"))
		}
		l.lock = lock
	}
	if l.restage {
		if err := os.RemoveAll(l.dir); err != nil {
			return err
		}
		l.restage = false
	}
	if !l.cleaned {
		l.cleaned = true
		removeStaleTemps(l.dir)
		removeStaleTemps(filepath.Join(l.dir, "blobs", "sha256"))
	}
	if l.ready {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	if l.archive {
		l.staged = newIndex()
	}
	// index.json before oci-layout: a directory with oci-layout always has
	// an index.
	doc := l.index
	if l.archive {
		doc = l.staged
	}
	if err := writeFileAtomic(filepath.Join(l.dir, IndexFile), doc.encode()); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(l.dir, LayoutFile), []byte(layoutVersion)); err != nil {
		return err
	}
	l.ready, l.exists, l.written = true, true, l.archive
	return nil
}

// lookup returns the entry named name.
func (l *Layout) lookup(name string) (descriptor, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.index.get(name)
	if e == nil {
		return descriptor{}, false
	}
	return e.desc, true
}

// setName points name at desc and rewrites index.json (atomically).
func (l *Layout) setName(name string, desc descriptor) error {
	if err := l.ensure(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.index.get(name); e != nil && e.desc.Digest == desc.Digest && e.desc.MediaType == desc.MediaType {
		return nil
	}
	desc.Annotations = map[string]string{AnnotationName: name}
	raw, _ := json.Marshal(desc)
	l.index.set(name, raw, desc)
	doc := l.index
	if l.archive {
		l.staged.set(name, raw, desc)
		doc, l.written = l.staged, true
	}
	return writeFileAtomic(filepath.Join(l.dir, IndexFile), doc.encode())
}

// Finish completes an archive this run wrote to: the archive is rewritten
// (a temporary file renamed over it) with the old and the new content, and
// the staging directory removed. An archive nothing was added to is left
// untouched. A directory layout needs nothing.
// The run's lock on the layout is released.
func (l *Layout) Finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() {
		if l.lock != nil {
			_ = l.lock.Unlock()
			l.lock = nil
		}
	}()
	if !l.archive || !l.written {
		return nil
	}
	if err := writeTar(l); err != nil {
		return fmt.Errorf("writing %s: %w", l.path, err)
	}
	l.written = false
	return nil
}

func (l *Layout) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.base != nil {
		l.base.close()
	}
	if l.lock != nil {
		_ = l.lock.Unlock()
		l.lock = nil
	}
}

// blobPath is where a blob lives in dir.
func (l *Layout) blobPath(digest string) (string, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", client.Permanent(fmt.Errorf("unsupported digest %q", digest))
	}
	return filepath.Join(l.dir, "blobs", algo, hex), nil
}

// hasBlob reports whether the layout holds the blob.
func (l *Layout) hasBlob(digest string) (bool, error) {
	p, err := l.blobPath(digest)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if l.base != nil {
		_, ok := l.base.blobs[digest]
		return ok, nil
	}
	return false, nil
}

// openBlob opens a blob for reading, and says where it is (for messages).
func (l *Layout) openBlob(digest string) (io.ReadCloser, int64, string, error) {
	p, err := l.blobPath(digest)
	if err != nil {
		return nil, 0, "", err
	}
	f, err := os.Open(p)
	if err == nil {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, p, err
		}
		return f, st.Size(), p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, p, err
	}
	if l.base != nil {
		if rc, size, ok := l.base.open(digest); ok {
			return rc, size, l.path + ":" + tarBlobName(digest), nil
		}
	}
	return nil, 0, p, missing(l.path + ": blob " + digest)
}

// readManifest reads a manifest blob whole and checks its digest.
func (l *Layout) readManifest(digest string) ([]byte, error) {
	rc, size, where, err := l.openBlob(digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxManifest {
		return nil, client.Permanent(fmt.Errorf("%s: manifest larger than %d bytes", where, maxManifest))
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if got := client.Digest(raw); got != digest {
		return nil, client.Permanent(fmt.Errorf("%s: corrupt: its bytes hash to %s", where, got))
	}
	return raw, nil
}

// stagedBlobs lists the blobs in dir (the staging directory of an archive).
func (l *Layout) stagedBlobs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(l.dir, "blobs", "sha256"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && len(e.Name()) == 64 && strings.Trim(e.Name(), "0123456789abcdef") == "" {
			out = append(out, "sha256:"+e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

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
func (r *Repo) HeadManifest(ctx context.Context, ref string) (client.Descriptor, error) {
	if isDigest(ref) {
		_, d, err := r.GetManifest(ctx, ref)
		return d, err
	}
	what := r.String() + refSep(ref) + strings.TrimPrefix(ref, "@")
	d, ok := r.l.lookup(r.fullName(ref))
	if !ok {
		return client.Descriptor{}, missing(what)
	}
	// A name counts only for a whole image: a blob deleted (or a manifest
	// damaged) since it was written makes it missing, so that a copy into
	// the layout writes it again and a copy out of it stops before pushing.
	if why := r.l.incomplete(d.Digest, map[string]bool{}); why != "" {
		return client.Descriptor{}, client.Permanent(&notFound{what: what, why: "incomplete: " + why})
	}
	return client.Descriptor{MediaType: types.MediaType(d.MediaType), Digest: d.Digest, Size: d.Size}, nil
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
	if client.IsNotFound(err) {
		return "manifest " + digest + " is missing"
	}
	if err != nil {
		return "manifest " + digest + ": " + err.Error()
	}
	var m struct {
		Manifests []struct{ Digest string } `json:"manifests"`
		Config    *struct{ Digest string }  `json:"config"`
		Layers    []struct {
			Digest string   `json:"digest"`
			URLs   []string `json:"urls"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "manifest " + digest + " is not JSON"
	}
	for _, c := range m.Manifests {
		if why := l.incomplete(c.Digest, seen); why != "" {
			return why
		}
	}
	blobs := []string{}
	if m.Config != nil {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, b := range m.Layers {
		if len(b.URLs) == 0 {
			blobs = append(blobs, b.Digest)
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
func (r *Repo) GetManifest(ctx context.Context, ref string) ([]byte, client.Descriptor, error) {
	digest, mt := ref, ""
	if !isDigest(ref) {
		d, err := r.HeadManifest(ctx, ref)
		if err != nil {
			return nil, client.Descriptor{}, err
		}
		digest, mt = d.Digest, string(d.MediaType)
	}
	raw, err := r.l.readManifest(digest)
	if err != nil {
		return nil, client.Descriptor{}, err
	}
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	return raw, client.Descriptor{MediaType: types.MediaType(mt), Digest: digest, Size: int64(len(raw))}, nil
}

// PutManifest stores a manifest; under a tag or "@digest" it also names it
// in index.json (after the manifest is stored, so a name never points at
// something missing).
func (r *Repo) PutManifest(ctx context.Context, ref string, mediaType types.MediaType, raw []byte) error {
	digest := client.Digest(raw)
	if strings.HasPrefix(ref, "@") && ref[1:] != digest {
		return client.Permanent(fmt.Errorf("%s: manifest named %s has the digest %s", r, ref[1:], digest))
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
		return string(client.MediaOCIIndex)
	default:
		return string(client.MediaOCIManifest)
	}
}
