package engine

import (
	"strings"
	"sync"

	"github.com/imagesync/imagesync/sync/ledger"
)

// blobTracker is the run's knowledge of what each destination registry
// holds, so a blob is uploaded once per registry and mounted everywhere else.
// It reads the digest ledger for what earlier runs left (unless refreshing)
// and writes every new fact to it.
type blobTracker struct {
	ledger  *ledger.Ledger
	believe belief // which of the ledger's facts count (none with --refresh)
	write   bool   // false for plan: nothing is written anywhere

	mu        sync.Mutex
	present   map[string]map[string]bool // host+digest → repositories that have it
	manifests map[string]bool            // host/repo@digest known present
	flights   map[string]*flight         // host+digest → upload in progress
	mounts    map[string]mountState      // host → whether a mount POST also answers "present"
}

type flight struct {
	done chan struct{}
	repo string // where it was uploaded
	err  error
}

func newBlobTracker(believe belief, write bool) *blobTracker {
	return &blobTracker{ledger: believe.l, believe: believe, write: write, present: map[string]map[string]bool{}, manifests: map[string]bool{}, flights: map[string]*flight{}, mounts: map[string]mountState{}}
}

func blobKey(r Store, digest string) string { return r.Host() + "@" + digest }

func (b *blobTracker) has(r Store, digest string) bool {
	b.mu.Lock()
	known := b.present[blobKey(r, digest)][r.Path()]
	b.mu.Unlock()
	return known || (b.believe.content() && !isOwnTruth(r) && b.ledger.HasBlob(r.String(), digest))
}

// add records that r holds the blob, in memory and in the ledger.
func (b *blobTracker) add(r Store, digest string) {
	b.mu.Lock()
	k := blobKey(r, digest)
	if b.present[k] == nil {
		b.present[k] = map[string]bool{}
	}
	b.present[k][r.Path()] = true
	b.mu.Unlock()
	if b.write && !isOwnTruth(r) {
		_ = b.ledger.RecordBlobs(r.String(), []string{digest})
	}
}

// mountFrom returns a repository of r's registry known to hold the blob.
func (b *blobTracker) mountFrom(r Store, digest string) string {
	b.mu.Lock()
	var cands []string
	for repo := range b.present[blobKey(r, digest)] {
		cands = append(cands, repo)
	}
	b.mu.Unlock()
	if b.believe.content() && !isOwnTruth(r) {
		reg := registryOf(r)
		for _, full := range b.ledger.ReposWithBlob(reg, digest) {
			cands = append(cands, strings.TrimPrefix(full, reg+"/"))
		}
	}
	best := ""
	for _, repo := range cands {
		if repo != r.Path() && (best == "" || repo < best) { // deterministic
			best = repo
		}
	}
	return best
}

// mountState is what a run learned of a registry host's blob mounts.
type mountState int8

const (
	mountsUnknown mountState = iota
	mountsProbing
	mountsWork // a mount of a blob the repository holds answers 201: the POST is a presence check
	mountsNot  // declined: blobs are checked with HEAD
)

func (b *blobTracker) mountState(r Store) mountState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mounts[r.Host()]
}

func (b *blobTracker) setMounts(r Store, s mountState) {
	b.mu.Lock()
	b.mounts[r.Host()] = s
	b.mu.Unlock()
}

// startProbe reports whether the caller is the one to probe r's host.
func (b *blobTracker) startProbe(r Store) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mounts[r.Host()] != mountsUnknown {
		return false
	}
	b.mounts[r.Host()] = mountsProbing
	return true
}

// forget drops what is known of r, in memory and in the ledger, after the
// registry contradicted it.
func (b *blobTracker) forget(r Store) {
	b.mu.Lock()
	for _, repos := range b.present {
		delete(repos, r.Path())
	}
	prefix := r.Host() + "/" + r.Path() + "@"
	for k := range b.manifests {
		if strings.HasPrefix(k, prefix) {
			delete(b.manifests, k)
		}
	}
	b.mu.Unlock()
	if b.write && !isOwnTruth(r) {
		_ = b.ledger.Invalidate(r.String(), "")
	}
}

// claim makes the caller the uploader of digest to r's registry, or returns
// the flight already under way.
func (b *blobTracker) claim(r Store, digest string) (f *flight, leader bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := blobKey(r, digest)
	if f, ok := b.flights[k]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{}), repo: r.Path()}
	b.flights[k] = f
	return f, true
}

func (b *blobTracker) land(r Store, digest string, f *flight, err error) {
	if err == nil {
		b.add(r, digest)
	}
	b.mu.Lock()
	delete(b.flights, blobKey(r, digest))
	b.mu.Unlock()
	f.err = err
	close(f.done)
}

func (b *blobTracker) hasManifest(r Store, digest string) bool {
	b.mu.Lock()
	known := b.manifests[r.Host()+"/"+r.Path()+"@"+digest]
	b.mu.Unlock()
	if known {
		return true
	}
	if b.believe.content() && !isOwnTruth(r) {
		_, ok := b.ledger.Manifest(r.String() + "@" + digest)
		return ok
	}
	return false
}

// manifestPresent records that r holds the manifest digest (a child, or a
// root pushed by digest), in memory and in the ledger.
func (b *blobTracker) manifestPresent(r Store, digest string) {
	b.mu.Lock()
	b.manifests[r.Host()+"/"+r.Path()+"@"+digest] = true
	b.mu.Unlock()
	if b.write && !isOwnTruth(r) {
		_ = b.ledger.RecordManifest(r.String()+"@"+digest, ledger.Entry{Digest: digest})
	}
}
