package engine

import "sync"

// blobTracker is the run's knowledge of what each destination registry
// holds, so a blob is uploaded once per registry and mounted everywhere
// else: this run's memory layered over what else is known of a store
// (reuseKnowledge: the ledger, or nothing for a store that is its own
// truth), the uploads in flight and what each host's mounts answer.
type blobTracker struct {
	mem  *memoryKnowledge
	past func(Store) reuseKnowledge

	mu      sync.Mutex
	flights map[string]*flight     // host+digest → upload in progress or landed
	mounts  map[string]mountState  // host → whether a mount POST also answers "present"
	missing map[string]*repoAnswer // repository → whether it was missing when the run first asked
}

// repoAnswer is a registry's answer, once per run, to whether a
// repository exists (see newRepo).
type repoAnswer struct {
	done    chan struct{}
	missing bool
}

type flight struct {
	done chan struct{}
	repo string // where it was uploaded
	err  error
}

// newBlobTracker returns a tracker whose knowledge beyond this run is past.
func newBlobTracker(past func(Store) reuseKnowledge) *blobTracker {
	return &blobTracker{mem: newMemoryKnowledge(), past: past, flights: map[string]*flight{}, mounts: map[string]mountState{}, missing: map[string]*repoAnswer{}}
}

// know is everything known of r: this run's memory over r's other knowledge.
func (b *blobTracker) know(r Store) reuseKnowledge { return layered{mem: b.mem, past: b.past(r)} }

func blobKey(r Store, digest string) string { return r.Host() + "@" + digest }

func (b *blobTracker) has(r Store, digest string) bool { return b.know(r).hasBlob(r, digest) }

// add records that r holds the blob.
func (b *blobTracker) add(r Store, digest string) { b.know(r).addBlob(r, digest) }

// mountFrom returns a repository of r's registry known to hold the blob.
func (b *blobTracker) mountFrom(r Store, digest string) string {
	best := ""
	for _, repo := range b.know(r).blobHolders(r, digest) {
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

// repoMissing returns the run's answer to whether r's repository was
// missing, asking ask once (the other callers wait for its answer).
func (b *blobTracker) repoMissing(r Store, ask func() bool) bool {
	b.mu.Lock()
	a, ok := b.missing[r.String()]
	if !ok {
		a = &repoAnswer{done: make(chan struct{})}
		b.missing[r.String()] = a
	}
	b.mu.Unlock()
	if !ok {
		a.missing = ask()
		close(a.done)
	}
	<-a.done
	return a.missing
}

// repoAsked reports whether repoMissing was called for r.
func (b *blobTracker) repoAsked(r Store) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.missing[r.String()]
	return ok
}

// forget drops what is known of r after the registry contradicted it.
func (b *blobTracker) forget(r Store) { b.know(r).forget(r) }

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

// claimRepo makes the caller the one to mount digest into the repository
// r (one mount per repository, however many of its jobs need the blob), or
// returns the mount already under way. Settle it with landRepo.
func (b *blobTracker) claimRepo(r Store, digest string) (f *flight, leader bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := "repo " + r.String() + "@" + digest
	if f, ok := b.flights[k]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{}), repo: r.Path()}
	b.flights[k] = f
	return f, true
}

func (b *blobTracker) landRepo(r Store, digest string, f *flight, err error) {
	if err == nil {
		b.add(r, digest)
	}
	b.mu.Lock()
	delete(b.flights, "repo "+r.String()+"@"+digest)
	b.mu.Unlock()
	f.err = err
	close(f.done)
}

// land ends a flight. A blob that landed stays claimed for the rest of the
// run: a job that asked the destination before it landed, and claims it
// after, waits on the landed flight (and mounts from where it landed)
// instead of uploading it a second time. A failed flight is dropped: the
// next job leads a new one.
func (b *blobTracker) land(r Store, digest string, f *flight, err error) {
	if err == nil {
		b.add(r, digest)
	}
	b.mu.Lock()
	if err != nil {
		delete(b.flights, blobKey(r, digest))
	}
	b.mu.Unlock()
	f.err = err
	close(f.done)
}

func (b *blobTracker) hasManifest(r Store, digest string) bool {
	return b.know(r).hasManifest(r, digest)
}

// manifestPresent records that r holds the manifest digest (a child, or a
// root pushed by digest).
func (b *blobTracker) manifestPresent(r Store, digest string) { b.know(r).addManifest(r, digest) }
