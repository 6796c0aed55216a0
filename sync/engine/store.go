package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/layout"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// Store is one repository the engine copies from and to: a registry's
// (*client.Repo) or an OCI image layout's (*layout.Repo), opened by scheme
// (schemes); what else a store can do it says through the capability
// interfaces below. The engine has
// one code path for both: manifests as raw bytes, blobs streamed, presence
// by HEAD. An upload into a layout is a crash-safe file write; a "mount"
// into a layout is a blob it already holds.
type Store interface {
	String() string // for messages: "registry/repository", "oci:DIR:name"
	Host() string   // stores of one host share blobs (mount between them)
	Path() string   // the repository path within the host

	HeadManifest(ctx context.Context, ref string) (oci.Descriptor, error)
	GetManifest(ctx context.Context, ref string) ([]byte, oci.Descriptor, error)
	PutManifest(ctx context.Context, ref string, mediaType types.MediaType, raw []byte) error
	Tags(ctx context.Context) (tags, invalid []string, err error)
	HeadBlob(ctx context.Context, digest string) (bool, error)
	GetBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error)
	StartUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error)
	PutUpload(ctx context.Context, location, digest string, size int64, body io.Reader) error
	CancelUpload(ctx context.Context, location string)
	// Referrers lists the manifests whose subject is digest, as an OCI
	// index (the referrers API); client.ErrNoReferrersAPI where the store
	// does not answer it (then the sha256-<hex> tag is read).
	Referrers(ctx context.Context, digest string) ([]byte, error)
}

var (
	_ Store = (*client.Repo)(nil)
	_ Store = (*layout.Repo)(nil)
)

// What a store can do beyond Store: the engine asks a store for these
// capabilities, never for its concrete type.
type (
	// ownTruth: a store that is the truth about what it holds (an image
	// layout): the ledger neither answers nor records for it, no HEAD
	// confirms what it says, and an image pushed by digest is named in it
	// ("@digest").
	ownTruth interface{ OwnTruth() bool }
	// uploadChecker: a store whose blob mount POST answers "present" (201)
	// or opens the upload session (202), so that one request can stand for
	// a HEAD and a POST (a registry; see checkBlob).
	uploadChecker interface {
		CheckUpload(ctx context.Context, digest, from string) (location string, mounted bool, err error)
	}
	// repoFinder: a store that can say a repository does not exist (a
	// registry, by its tag list): a missing repository holds no blob, so
	// its blobs are not asked for one by one (see newRepo).
	repoFinder interface {
		Missing(ctx context.Context) (bool, error)
	}
	// referrerIndexer: a store that lists referrers itself, once they are
	// stored (an image layout's index.json); others get a fallback tag
	// index unless they serve the referrers API.
	referrerIndexer interface {
		IndexReferrer(ctx context.Context, digest string, mediaType types.MediaType) error
		Lists(digest string) bool
	}
	// credentialNamer: a store that says where the credentials it used
	// came from, for a denied request.
	credentialNamer interface{ CredentialSource() string }
	// blobRanger: a store that can open a blob from an offset (a
	// registry, by a Range request it checks), so that a read cut midway
	// resumes from the byte it reached (resumingReader) instead of every
	// upload fed from it starting over. from is where the returned bytes
	// start: offset, or 0 when the store sent the whole blob again (a
	// registry that ignores Range). An image layout reads a local file and
	// does not need it.
	blobRanger interface {
		GetBlobFrom(ctx context.Context, digest string, offset, size int64) (rc io.ReadCloser, from int64, err error)
	}
)

var (
	_ uploadChecker   = (*client.Repo)(nil)
	_ credentialNamer = (*client.Repo)(nil)
	_ blobRanger      = (*client.Repo)(nil)
	_ repoFinder      = (*client.Repo)(nil)
	_ ownTruth        = (*layout.Repo)(nil)
	_ referrerIndexer = (*layout.Repo)(nil)
)

// storeScheme is how the stores of one scheme are opened, and what is
// known of them before one is opened.
type storeScheme struct {
	open     func(e *Engine, ctx context.Context, location, repository string, push bool) (Store, error)
	ownTruth bool // its stores are ownTruth
	// files: its stores are files on this machine (an image layout, or an
	// archive of one: archive), opened and checked before anything is
	// copied (openLayouts) and completed when the run ends (finishLayouts).
	files, archive bool
}

// schemes are the stores a reference can name, by its scheme (as
// regclient's scheme table).
var schemes = map[oci.Scheme]storeScheme{
	oci.SchemeRegistry: {open: openRegistry},
	oci.SchemeLayout:   {open: openLayout(false), ownTruth: true, files: true},
	oci.SchemeArchive:  {open: openLayout(true), ownTruth: true, files: true, archive: true},
}

func openRegistry(e *Engine, ctx context.Context, host, repository string, push bool) (Store, error) {
	r, err := e.c.Repo(ctx, host, repository, push)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func openLayout(archive bool) func(e *Engine, ctx context.Context, path, repository string, push bool) (Store, error) {
	return func(e *Engine, _ context.Context, path, repository string, _ bool) (Store, error) {
		l, err := e.layouts.Open(path, archive, false)
		if err != nil {
			return nil, err
		}
		return l.Repo(repository), nil
	}
}

// store opens the repository a rule reference names, by its scheme: a
// registry repository, or a repository of an image layout (oci:DIR,
// oci-archive:FILE).
func (e *Engine) store(ctx context.Context, reg, repository string, push bool) (Store, error) {
	scheme, location := schemeOf(reg)
	return schemes[scheme].open(e, ctx, location, repository, push)
}

// schemeOf splits a reference's registry part into the scheme of the table
// that names its stores and the rest (a host, a path).
func schemeOf(reg string) (oci.Scheme, string) {
	for s := range schemes {
		if s != oci.SchemeRegistry && strings.HasPrefix(reg, string(s)) {
			return s, reg[len(s):]
		}
	}
	return oci.SchemeRegistry, reg
}

// filesAt says where on this machine the stores a reference's registry
// part names are kept, for the schemes whose stores are files (see
// storeScheme.files); ok is false for the others.
func filesAt(registry string) (path string, archive, ok bool) {
	scheme, location := schemeOf(registry)
	s := schemes[scheme]
	return location, s.archive, s.files
}

// isOwnTruth reports whether a store is the truth about what it holds (see
// ownTruth).
func isOwnTruth(s Store) bool {
	t, ok := s.(ownTruth)
	return ok && t.OwnTruth()
}

// ownTruthAt reports whether the stores a reference's registry part names
// are their own truth, before one is opened.
func ownTruthAt(registry string) bool {
	scheme, _ := schemeOf(registry)
	return schemes[scheme].ownTruth
}

// knowledge is what is known of a store beyond this run's requests: the
// ledger, unless the store is its own truth or there is none. The dry run
// (plan) writes nothing.
func (e *Engine) knowledge(s Store) reuseKnowledge {
	if e.opt.Ledger == nil || isOwnTruth(s) {
		return noKnowledge{}
	}
	return ledgerKnowledge{l: e.opt.Ledger, believe: e.belief, write: !e.opt.DryRun}
}

// reuse is what is known of a destination reference's stores, before one
// is opened (see knowledge).
func (e *Engine) reuse(dst rules.Ref) reuseKnowledge {
	if e.opt.Ledger == nil || ownTruthAt(dst.Registry) {
		return noKnowledge{}
	}
	return ledgerKnowledge{l: e.opt.Ledger, believe: e.belief, write: !e.opt.DryRun}
}

// ledgerFor returns the ledger for a destination: none (nil, which answers
// nothing and records nothing) for a store that is its own truth.
func (e *Engine) ledgerFor(dst rules.Ref) *ledger.Ledger {
	if ownTruthAt(dst.Registry) {
		return nil
	}
	return e.opt.Ledger
}

// registryOf returns the registry part of a registry store's String().
func registryOf(s Store) string { return strings.TrimSuffix(s.String(), "/"+s.Path()) }

// manifestRef is the reference a job's manifest is PUT (and looked up)
// under at its destination: the tag, else the digest. A layout names every
// image it holds in index.json, so an image pushed by digest is PUT there as
// "@digest" (stored and named), unlike a child manifest (stored only).
func manifestRef(dst Store, tag, digest string) string {
	switch {
	case tag != "":
		return tag
	case isOwnTruth(dst):
		return "@" + digest
	}
	return digest
}

// openLayouts opens every layout the rules name before anything is copied:
// a source must be a layout (and its names are returned, by rule index, for
// the rules that take every image); a destination that exists must be one.
// Any problem is a configuration error naming the rule and the path; bad
// says which rules have one.
func (e *Engine) openLayouts(rs []rules.Rule) (names map[int][]string, bad map[int]bool, errs rules.ErrorList) {
	names, bad = map[int][]string{}, map[int]bool{}
	warned := map[string]bool{}      // layouts whose orphaned referrers were reported
	warnedNames := map[string]bool{} // layouts whose ambiguous names were reported
	fail := func(i int, r *rules.Rule, line int, err error) {
		if line == 0 {
			line = r.Line
		}
		bad[i] = true
		errs = append(errs, &cfgfile.Error{File: r.File, Line: line, Key: r.Key, Msg: err.Error()})
	}
	for i := range rs {
		r := &rs[i]
		if path, archive, ok := filesAt(r.Source.Registry); ok {
			l, err := e.layouts.Open(path, archive, true)
			if err != nil {
				fail(i, r, r.Line, err)
				continue
			}
			if !warnedNames[path] {
				warnedNames[path] = true
				amb := l.Ambiguous()
				for _, n := range slices.Sorted(maps.Keys(amb)) {
					e.log.Warn("index.json names one image more than once, with different digests: neither is copied", "layout", path, "name", n, "entries", strings.Join(amb[n], ", "))
				}
			}
			if r.Source.Kind == rules.AllImages {
				if err := e.checkUnnamed(path, l, warned); err != nil {
					fail(i, r, r.Line, err)
					continue
				}
				names[i], _ = l.Names()
			}
		}
		for _, d := range r.Destinations {
			if path, archive, ok := filesAt(d.Registry); ok {
				if r.PlatformMode == ModeKeepIndex {
					// The layout would name an index whose filtered-out
					// children it does not hold: not a valid layout.
					fail(i, r, d.Line, fmt.Errorf("%s: platform mode %s cannot write into an image layout (it would name an index without its children); use %s", d.Registry, ModeKeepIndex, "rewrite"))
					continue
				}
				if _, err := e.layouts.Open(path, archive, false); err != nil {
					fail(i, r, d.Line, err)
				}
			}
		}
	}
	return names, bad, errs
}

// finishLayouts completes the archives this run wrote to; a job whose
// archive could not be written fails.
func (e *Engine) finishLayouts(res *Result) {
	if e.opt.DryRun {
		return
	}
	errs := e.layouts.Finish()
	if len(errs) == 0 {
		return
	}
	for i := range res.Jobs {
		r := &res.Jobs[i]
		path, archive, ok := filesAt(r.Job.Destination.Registry)
		if err := errs[path]; ok && archive && err != nil && r.Action != Failed {
			r.Action, r.Err, r.Late = Failed, fmt.Errorf("copy %s → %s: %w", r.Job.Source, r.Job.Destination, err), true
		}
	}
}

// Close releases the files of the image layouts the engine opened.
func (e *Engine) Close() { e.layouts.Close() }

// readFrom names the file a blob was read from, when it came from a layout.
func readFrom(r io.Reader) string {
	if w, ok := r.(interface{ Where() string }); ok {
		return " (read from " + w.Where() + ")"
	}
	return ""
}

// missingDetail says what a layout lacks of an image it names.
func missingDetail(err error) string {
	var w interface{ Why() string }
	if errors.As(err, &w) {
		return w.Why()
	}
	return ""
}

// verifyLayoutSource re-hashes everything a job's source image holds in its
// layout (verify --deep on the side that imports a layout).
func (e *Engine) verifyLayoutSource(ctx context.Context, j rules.Job) []Problem {
	src, err := e.store(ctx, j.Source.Registry, j.Source.Repository, false)
	if err != nil {
		return []Problem{{Kind: ProblemError, Ref: j.Source.String(), Detail: err.Error()}}
	}
	digest := j.Source.Digest
	if digest == "" {
		d, err := src.HeadManifest(ctx, j.Source.Tag)
		if err != nil {
			return []Problem{{Kind: ProblemError, Ref: j.Source.String(), Detail: err.Error()}}
		}
		digest = d.Digest
	}
	return e.verifyTree(ctx, src, digest, true, map[string]bool{})
}
