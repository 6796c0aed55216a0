package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// memScheme names in-memory stores in engine tests: mem:HOST is a registry
// host of memStores (one per repository), opened through the engine's
// scheme table like any store, with no HTTP at all.
const memScheme oci.Scheme = "mem:"

var (
	memHosts sync.Map // host → *memHost
	memSeq   atomic.Int64
)

type memHost struct {
	mu    sync.Mutex
	repos map[string]*memStore
}

func init() {
	schemes[memScheme] = storeScheme{open: func(_ *Engine, _ context.Context, host, repository string, _ bool) (Store, error) {
		h, _ := memHosts.LoadOrStore(host, &memHost{repos: map[string]*memStore{}})
		return h.(*memHost).repo(host, repository), nil
	}}
}

// newMemHost returns a fresh in-memory registry host for one test.
func newMemHost(t *testing.T) (string, *memHost) {
	host := fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), memSeq.Add(1))
	h := &memHost{repos: map[string]*memStore{}}
	memHosts.Store(host, h)
	t.Cleanup(func() { memHosts.Delete(host) })
	return string(memScheme) + host, h
}

func (h *memHost) repo(host, name string) *memStore {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.repos[name]
	if !ok {
		r = &memStore{h: h, host: host, name: name, manifests: map[string]memManifest{}, blobs: map[string][]byte{}, calls: map[string]int{}}
		h.repos[name] = r
	}
	return r
}

// calls sums one method's calls over every repository of the host.
func (h *memHost) calls(method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.repos {
		r.mu.Lock()
		n += r.calls[method]
		r.mu.Unlock()
	}
	return n
}

type memManifest struct {
	raw       []byte
	mediaType types.MediaType
}

// memStore is one repository held in memory: a Store that counts its calls.
type memStore struct {
	h          *memHost
	host, name string

	mu        sync.Mutex
	manifests map[string]memManifest // by tag and by digest
	blobs     map[string][]byte
	calls     map[string]int
}

var _ Store = (*memStore)(nil)

type memNotFound struct{ what string }

func (e memNotFound) Error() string  { return e.what + " not found" }
func (e memNotFound) NotFound() bool { return true }

func (m *memStore) count(method string) {
	m.mu.Lock()
	m.calls[method]++
	m.mu.Unlock()
}

func (m *memStore) String() string { return string(memScheme) + m.host + "/" + m.name }
func (m *memStore) Host() string   { return string(memScheme) + m.host }
func (m *memStore) Path() string   { return m.name }

func (m *memStore) HeadManifest(_ context.Context, ref string) (oci.Descriptor, error) {
	m.count("HeadManifest")
	m.mu.Lock()
	defer m.mu.Unlock()
	mf, ok := m.manifests[ref]
	if !ok {
		return oci.Descriptor{}, memNotFound{"manifest " + ref}
	}
	return oci.Descriptor{MediaType: mf.mediaType, Digest: oci.Digest(mf.raw), Size: int64(len(mf.raw))}, nil
}

func (m *memStore) GetManifest(ctx context.Context, ref string) ([]byte, oci.Descriptor, error) {
	m.count("GetManifest")
	m.mu.Lock()
	mf, ok := m.manifests[ref]
	m.mu.Unlock()
	if !ok {
		return nil, oci.Descriptor{}, memNotFound{"manifest " + ref}
	}
	return mf.raw, oci.Descriptor{MediaType: mf.mediaType, Digest: oci.Digest(mf.raw), Size: int64(len(mf.raw))}, nil
}

func (m *memStore) PutManifest(_ context.Context, ref string, mediaType types.MediaType, raw []byte) error {
	m.count("PutManifest")
	m.mu.Lock()
	defer m.mu.Unlock()
	mf := memManifest{raw: append([]byte(nil), raw...), mediaType: mediaType}
	m.manifests[ref] = mf
	m.manifests[oci.Digest(raw)] = mf
	return nil
}

func (m *memStore) Tags(context.Context) (tags, invalid []string, err error) {
	m.count("Tags")
	m.mu.Lock()
	defer m.mu.Unlock()
	for ref := range m.manifests {
		if !oci.ValidDigest(ref) {
			tags = append(tags, ref)
		}
	}
	return tags, nil, nil
}

func (m *memStore) HeadBlob(_ context.Context, digest string) (bool, error) {
	m.count("HeadBlob")
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[digest]
	return ok, nil
}

func (m *memStore) GetBlob(_ context.Context, digest string) (io.ReadCloser, int64, error) {
	m.count("GetBlob")
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[digest]
	if !ok {
		return nil, 0, memNotFound{"blob " + digest}
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// StartUpload mounts from another repository of the host that holds the
// blob, as a registry does.
func (m *memStore) StartUpload(_ context.Context, digest, from string) (string, bool, error) {
	m.count("StartUpload")
	if from != "" {
		m.h.mu.Lock()
		other := m.h.repos[from]
		m.h.mu.Unlock()
		if other != nil {
			other.mu.Lock()
			b, ok := other.blobs[digest]
			other.mu.Unlock()
			if ok {
				m.mu.Lock()
				m.blobs[digest] = b
				m.mu.Unlock()
				return "", true, nil
			}
		}
	}
	return "upload", false, nil
}

func (m *memStore) PutUpload(_ context.Context, _, digest string, _ int64, body io.Reader) error {
	m.count("PutUpload")
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if oci.DigestWith(digest, b) != digest {
		return oci.Permanent(fmt.Errorf("blob %s: bytes hash to %s", digest, oci.DigestWith(digest, b)))
	}
	m.mu.Lock()
	m.blobs[digest] = b
	m.mu.Unlock()
	return nil
}

func (m *memStore) CancelUpload(context.Context, string) { m.count("CancelUpload") }

func (m *memStore) Referrers(context.Context, string) ([]byte, error) {
	m.count("Referrers")
	return nil, client.ErrNoReferrersAPI
}

// putBlob and putManifest seed a memStore.
func (m *memStore) putBlob(b []byte) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := oci.Digest(b)
	m.blobs[d] = b
	return d
}

func (m *memStore) putManifest(ref string, mediaType types.MediaType, raw []byte) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	mf := memManifest{raw: raw, mediaType: mediaType}
	m.manifests[ref] = mf
	m.manifests[oci.Digest(raw)] = mf
	return oci.Digest(raw)
}

// The 30 × 30 repeated-children tree between two in-memory stores: one read
// of each distinct manifest and blob, one write of each per destination —
// the engine alone, no HTTP.
func TestRepeatedChildrenInMemory(t *testing.T) {
	srcHost, src := newMemHost(t)
	dstHost, dst := newMemHost(t)
	repo := src.repo(strings.TrimPrefix(srcHost, string(memScheme)), "lib/tree")
	cfg := repo.putBlob([]byte(`{"architecture":"amd64","os":"linux"}`))
	layer := repo.putBlob([]byte("one layer"))
	img := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"digest":%q,"size":37},"layers":[{"digest":%q,"size":9}]}`, oci.MediaOCIManifest, cfg, layer)
	imgD := repo.putManifest(oci.Digest([]byte(img)), oci.MediaOCIManifest, []byte(img))
	list := func(mt types.MediaType, d string) string {
		e := make([]string, 30)
		for i := range e {
			e[i] = fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":1}`, mt, d)
		}
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, oci.MediaOCIIndex, strings.Join(e, ","))
	}
	mid := list(oci.MediaOCIManifest, imgD)
	midD := repo.putManifest(oci.Digest([]byte(mid)), oci.MediaOCIIndex, []byte(mid))
	top := repo.putManifest("1", oci.MediaOCIIndex, []byte(list(oci.MediaOCIIndex, midD)))

	var jobs []rules.Job
	for _, name := range []string{"mirror/tree", "other/tree"} {
		jobs = append(jobs, rules.Job{Source: rules.Ref{Registry: srcHost, Repository: "lib/tree", Tag: "1"}, Destination: rules.Ref{Registry: dstHost, Repository: name, Tag: "1"}})
	}
	res := newEngine(t, Options{}).Sync(context.Background(), jobs, nil)
	if res.Summary.Copied != 2 {
		t.Fatalf("sync: %+v %v", res.Summary, res.Jobs)
	}
	for _, r := range res.Jobs {
		if r.Digest != top {
			t.Errorf("%s: digest %s, want %s", r.Job.Destination, r.Digest, top)
		}
	}
	if n := src.calls("GetManifest"); n != 3 {
		t.Errorf("%d manifest reads, want 3", n)
	}
	if n := src.calls("GetBlob"); n != 2 {
		t.Errorf("%d blob reads, want 2 (one per blob; the destinations share the host: mounted)", n)
	}
	if n := dst.calls("PutManifest"); n != 6 {
		t.Errorf("%d manifest writes, want 6", n)
	}
}
