package engine

import (
	"strings"
	"sync"

	"github.com/imagesync/imagesync/sync/ledger"
)

// reuseKnowledge is what is known, without asking, of what a destination
// holds and where a blob can be mounted from, and where what the run
// learns is kept: containers/image's blob-info cache. Three kinds:
// memoryKnowledge (what this run saw), ledgerKnowledge (what earlier runs
// recorded in the digest ledger, as far as the run believes it; this run's
// facts are written there), and noKnowledge (a store that is its own truth,
// or a run without a ledger). The blob tracker layers this run's memory
// over the store's other knowledge; the decision code records a finished
// image through it (recordImage), never through the ledger.
type reuseKnowledge interface {
	hasBlob(r Store, digest string) bool
	// blobHolders returns repositories of r's registry known to hold the blob.
	blobHolders(r Store, digest string) []string
	hasManifest(r Store, digest string) bool
	addBlob(r Store, digest string)
	addManifest(r Store, digest string)
	// recordImage records a destination reference (ledger key) as holding
	// the image ent describes.
	recordImage(key string, ent ledger.Entry)
	// forget drops what is known of r after the registry contradicted it.
	forget(r Store)
	// uploadSession, keepSession and dropSession are the open upload
	// session of a large blob into r that a run left (see uploadResumable).
	uploadSession(r Store, digest string) (ledger.Upload, bool)
	keepSession(r Store, digest string, u ledger.Upload)
	dropSession(r Store, digest string)
}

// noKnowledge knows nothing and keeps nothing.
type noKnowledge struct{}

func (noKnowledge) hasBlob(Store, string) bool         { return false }
func (noKnowledge) blobHolders(Store, string) []string { return nil }
func (noKnowledge) hasManifest(Store, string) bool     { return false }
func (noKnowledge) addBlob(Store, string)              {}
func (noKnowledge) addManifest(Store, string)          {}
func (noKnowledge) recordImage(string, ledger.Entry)   {}
func (noKnowledge) forget(Store)                       {}
func (noKnowledge) uploadSession(Store, string) (ledger.Upload, bool) {
	return ledger.Upload{}, false
}
func (noKnowledge) keepSession(Store, string, ledger.Upload) {}
func (noKnowledge) dropSession(Store, string)                {}

var _ reuseKnowledge = noKnowledge{}

// ledgerKnowledge is the digest ledger: read as far as believe allows
// (nothing with --refresh), written unless write is off (plan).
type ledgerKnowledge struct {
	l       *ledger.Ledger
	believe belief
	write   bool
}

var _ reuseKnowledge = ledgerKnowledge{}

func (k ledgerKnowledge) hasBlob(r Store, digest string) bool {
	return k.believe.content() && k.l.HasBlob(r.String(), digest)
}

func (k ledgerKnowledge) blobHolders(r Store, digest string) []string {
	if !k.believe.content() {
		return nil
	}
	reg := registryOf(r)
	var out []string
	for _, full := range k.l.ReposWithBlob(reg, digest) {
		out = append(out, strings.TrimPrefix(full, reg+"/"))
	}
	return out
}

func (k ledgerKnowledge) hasManifest(r Store, digest string) bool {
	if !k.believe.content() {
		return false
	}
	_, ok := k.l.Manifest(r.String() + "@" + digest)
	return ok
}

func (k ledgerKnowledge) addBlob(r Store, digest string) {
	if k.write {
		_ = k.l.RecordBlobs(r.String(), []string{digest})
	}
}

func (k ledgerKnowledge) addManifest(r Store, digest string) {
	if k.write {
		_ = k.l.RecordManifest(r.String()+"@"+digest, ledger.Entry{Digest: digest})
	}
}

func (k ledgerKnowledge) recordImage(key string, ent ledger.Entry) {
	if k.write {
		_ = k.l.RecordManifest(key, ent)
	}
}

func (k ledgerKnowledge) forget(r Store) {
	if k.write {
		_ = k.l.Invalidate(r.String(), "")
	}
}

// uploadSession is read even when the ledger's content is not believed
// (--refresh): the registry confirms a session before it is used.
func (k ledgerKnowledge) uploadSession(r Store, digest string) (ledger.Upload, bool) {
	if !k.write {
		return ledger.Upload{}, false
	}
	return k.l.UploadSession(r.String(), digest)
}

func (k ledgerKnowledge) keepSession(r Store, digest string, u ledger.Upload) {
	if k.write {
		_ = k.l.RecordUploadSession(r.String(), digest, u)
	}
}

func (k ledgerKnowledge) dropSession(r Store, digest string) {
	if k.write {
		_ = k.l.ForgetUploadSession(r.String(), digest)
	}
}

// memoryKnowledge is what this run saw: per registry host and digest the
// repositories holding a blob, and the manifests known present.
type memoryKnowledge struct {
	mu        sync.Mutex
	present   map[string]map[string]bool // host+digest → repositories that have it
	manifests map[string]bool            // host/repo@digest known present
}

var _ reuseKnowledge = (*memoryKnowledge)(nil)

func newMemoryKnowledge() *memoryKnowledge {
	return &memoryKnowledge{present: map[string]map[string]bool{}, manifests: map[string]bool{}}
}

func (m *memoryKnowledge) hasBlob(r Store, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.present[blobKey(r, digest)][r.Path()]
}

func (m *memoryKnowledge) blobHolders(r Store, digest string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for repo := range m.present[blobKey(r, digest)] {
		out = append(out, repo)
	}
	return out
}

func (m *memoryKnowledge) hasManifest(r Store, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.manifests[r.Host()+"/"+r.Path()+"@"+digest]
}

func (m *memoryKnowledge) addBlob(r Store, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := blobKey(r, digest)
	if m.present[k] == nil {
		m.present[k] = map[string]bool{}
	}
	m.present[k][r.Path()] = true
}

func (m *memoryKnowledge) addManifest(r Store, digest string) {
	m.mu.Lock()
	m.manifests[r.Host()+"/"+r.Path()+"@"+digest] = true
	m.mu.Unlock()
}

func (m *memoryKnowledge) recordImage(string, ledger.Entry) {}

func (m *memoryKnowledge) uploadSession(Store, string) (ledger.Upload, bool) {
	return ledger.Upload{}, false
}
func (m *memoryKnowledge) keepSession(Store, string, ledger.Upload) {}
func (m *memoryKnowledge) dropSession(Store, string)                {}

func (m *memoryKnowledge) forget(r Store) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, repos := range m.present {
		if strings.HasPrefix(k, r.Host()+"@") {
			delete(repos, r.Path())
		}
	}
	prefix := r.Host() + "/" + r.Path() + "@"
	for k := range m.manifests {
		if strings.HasPrefix(k, prefix) {
			delete(m.manifests, k)
		}
	}
}

// layered is this run's memory over what else is known: facts are asked
// of both and kept in both.
type layered struct {
	mem  *memoryKnowledge
	past reuseKnowledge
}

var _ reuseKnowledge = layered{}

func (k layered) hasBlob(r Store, d string) bool { return k.mem.hasBlob(r, d) || k.past.hasBlob(r, d) }
func (k layered) blobHolders(r Store, d string) []string {
	return append(k.mem.blobHolders(r, d), k.past.blobHolders(r, d)...)
}
func (k layered) hasManifest(r Store, d string) bool {
	return k.mem.hasManifest(r, d) || k.past.hasManifest(r, d)
}
func (k layered) addBlob(r Store, d string)                { k.mem.addBlob(r, d); k.past.addBlob(r, d) }
func (k layered) addManifest(r Store, d string)            { k.mem.addManifest(r, d); k.past.addManifest(r, d) }
func (k layered) recordImage(key string, ent ledger.Entry) { k.past.recordImage(key, ent) }
func (k layered) forget(r Store)                           { k.mem.forget(r); k.past.forget(r) }
func (k layered) uploadSession(r Store, d string) (ledger.Upload, bool) {
	return k.past.uploadSession(r, d)
}
func (k layered) keepSession(r Store, d string, u ledger.Upload) { k.past.keepSession(r, d, u) }
func (k layered) dropSession(r Store, d string)                  { k.past.dropSession(r, d) }
