package engine

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
)

// fake is go-containerregistry's in-memory registry behind a scripted
// faultproxy front: fast unit tests of the engine without registry
// binaries. Its blobs are kept per repository (ggcr's own in-memory store
// shares them across a registry), and the front mounts a blob across
// repositories when asked to (ggcr does not).
type fake struct {
	Host  string // the front, what the engine talks to
	Blobs *repoBlobs
	Front *faultproxy.Front
}

// newFake starts a fake registry. script, when set, sees every request
// first and may answer it itself; it returns false to let the fake answer.
func newFake(t *testing.T, script func(w http.ResponseWriter, r *http.Request) bool) *fake {
	t.Helper()
	blobs := &repoBlobs{m: map[string][]byte{}}
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithBlobHandler(blobs)))
	t.Cleanup(srv.Close)
	f := &fake{Blobs: blobs}
	f.Front = faultproxy.Scripted(t, strings.TrimPrefix(srv.URL, "http://"), func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if script != nil && script(w, r) {
			return
		}
		q := r.URL.Query()
		if r.Method == http.MethodPost && q.Get("mount") != "" {
			repo := repoOfPath(r.URL.Path, "/blobs/")
			if b, ok := blobs.get(q.Get("from"), q.Get("mount")); ok {
				blobs.put(repo, q.Get("mount"), b)
				w.Header().Set("Docker-Content-Digest", q.Get("mount"))
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	f.Host = f.Front.Host
	return f
}

// repoOfPath returns the repository of a /v2/<repo>/<kind>/… path.
func repoOfPath(p, kind string) string {
	repo, _, _ := strings.Cut(strings.TrimPrefix(p, "/v2/"), kind)
	return repo
}

// count returns how many requests had that method and a path containing part.
func (f *fake) count(method, part string) int { return f.Front.Count(method, part) }

// writes returns the requests that could change the registry.
func (f *fake) writes() []faultproxy.Entry {
	var out []faultproxy.Entry
	for _, e := range f.Front.Seen() {
		if e.Method != http.MethodGet && e.Method != http.MethodHead {
			out = append(out, e)
		}
	}
	return out
}

// repo returns the engine's client for one repository of the fake.
func (f *fake) repo(t *testing.T, e *Engine, name string) *client.Repo {
	t.Helper()
	r, err := e.c.Repo(context.Background(), f.Host, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// blob stores content in repo and returns its descriptor.
func (f *fake) blob(repo string, content []byte) oci.Blob {
	d := client.Digest(content)
	f.Blobs.put(repo, d, content)
	return oci.Blob{Digest: d, Size: int64(len(content))}
}

// repoBlobs is a go-containerregistry BlobHandler keeping blobs per
// repository.
type repoBlobs struct {
	mu sync.Mutex
	m  map[string][]byte // repo@digest → bytes
}

func (b *repoBlobs) get(repo, digest string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[repo+"@"+digest]
	return v, ok
}

func (b *repoBlobs) put(repo, digest string, v []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[repo+"@"+digest] = v
}

func (b *repoBlobs) del(repo, digest string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, repo+"@"+digest)
}

// ggcr names the repository of an upload's PUT "<repo>/blobs".
func plain(repo string) string { return strings.TrimSuffix(repo, "/blobs") }

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	v, ok := b.get(plain(repo), h.String())
	if !ok {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(v)), nil
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	v, ok := b.get(plain(repo), h.String())
	if !ok {
		return nil, ggcrregistry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(v)), nil
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	v, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.put(plain(repo), h.String(), v)
	return nil
}

func (b *repoBlobs) Delete(_ context.Context, repo string, h v1.Hash) error {
	if _, ok := b.get(plain(repo), h.String()); !ok {
		return ggcrregistry.ErrNotFound
	}
	b.del(plain(repo), h.String())
	return nil
}
