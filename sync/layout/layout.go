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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imagesync/imagesync/oci"
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
func missing(what string) error { return oci.Permanent(&notFound{what: what}) }

// Set holds the layouts of one run, one per path, so that every job writing
// to a layout shares its index.
type Set struct {
	mu        sync.Mutex
	m         map[string]*Layout
	normalize func(string) string
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
		l = &Layout{path: path, abs: abs, archive: archive, normalize: s.normalize}
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
	// root is dir opened as an *os.Root (nil until it exists): every file
	// of the layout is reached through it.
	root atomic.Pointer[os.Root]

	mu      sync.Mutex
	ready   bool // dir holds a valid (possibly empty) layout
	index   *indexDoc
	staged  *indexDoc // archive: the names written to the staging directory
	written bool      // archive: the staging directory holds something
	cleaned bool      // stale temporary files were looked for
	restage bool      // archive: our staging directory is unusable, empty it first
	lock    *layoutLock

	// normalize maps a name to its normalised form (Set.SetNormalize);
	// canon is the entries by normalised name, rebuilt when the index
	// changes (canonOf: the entry count it was built for).
	normalize  func(string) string
	canon      map[string][]*entry
	canonOf    int
	canonDirty bool

	// refMu guards refs, the referrers index.json lists by their subject
	// (nil until first asked for); taken before mu.
	refMu sync.Mutex
	refs  map[string][]descriptor
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
		root, err := os.OpenRoot(l.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &ConfigError{Path: l.path, Err: err}
		}
		if root != nil {
			l.root.Store(root)
		}
		ok, err := l.loadDir(root)
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
	root, err := l.openStaging()
	if err != nil || root == nil {
		return err
	}
	l.root.Store(root)
	// A staging directory left by a killed run: resume from it.
	staged, err := readLayoutRoot(root)
	switch {
	case err == nil && staged != nil:
		l.staged, l.ready, l.written = staged, true, true
		for _, e := range staged.entries {
			if e.name != "" {
				l.index.set(e.name, e.raw, e.desc)
			} else {
				l.index.addUnnamed(e.raw, e.desc) // a referrer
			}
		}
	case err != nil:
		// Killed before it was a layout: started again on the first write
		// (never emptied by a run that only reads, like plan).
		l.restage = true
	}
	return nil
}

// loadDir reads a layout directory. A missing or empty directory is no
// layout yet (ok false, no error).
func (l *Layout) loadDir(root *os.Root) (ok bool, err error) {
	idx, err := readLayoutRoot(root)
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

// readLayoutRoot reads oci-layout and index.json of a layout directory:
// nil, nil when it is missing (root nil) or empty; an error when it is
// something else than a layout.
func readLayoutRoot(root *os.Root) (*indexDoc, error) {
	if root == nil {
		return nil, nil
	}
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == stagingMarker })
	if len(entries) == 0 {
		return nil, nil
	}
	for _, dir := range []string{"blobs", filepath.Join("blobs", "sha256"), filepath.Join("blobs", "sha512")} {
		if _, err := checkDir(root, dir); err != nil {
			return nil, err
		}
	}
	lb, err := readSmall(root, LayoutFile, maxLayoutFile)
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
	b, err := readSmall(root, IndexFile, maxIndexSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("not a valid OCI image layout: %s is missing", IndexFile)
	}
	if err != nil {
		return nil, err
	}
	return readIndex(bytes.NewReader(b))
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
