package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/imagesync/imagesync/sync/engine/registry"
	"github.com/imagesync/imagesync/sync/ledger"
)

// blobTracker is the run's knowledge of what each destination registry
// holds, so a blob is uploaded once per registry and mounted everywhere else.
// It reads the digest ledger for what earlier runs left (unless refreshing)
// and writes every new fact to it.
type blobTracker struct {
	ledger    *ledger.Ledger
	useLedger bool // false with --refresh: the ledger is written, not believed
	write     bool // false for plan: nothing is written anywhere

	mu        sync.Mutex
	present   map[string]map[string]bool // host+digest → repositories that have it
	manifests map[string]bool            // host/repo@digest known present
	flights   map[string]*flight         // host+digest → upload in progress
}

type flight struct {
	done chan struct{}
	repo string // where it was uploaded
	err  error
}

func newBlobTracker(l *ledger.Ledger, useLedger, write bool) *blobTracker {
	return &blobTracker{ledger: l, useLedger: useLedger, write: write, present: map[string]map[string]bool{}, manifests: map[string]bool{}, flights: map[string]*flight{}}
}

func blobKey(r *registry.Repo, digest string) string { return r.Host() + "@" + digest }

func (b *blobTracker) has(r *registry.Repo, digest string) bool {
	b.mu.Lock()
	known := b.present[blobKey(r, digest)][r.Name]
	b.mu.Unlock()
	return known || (b.useLedger && b.ledger.HasBlob(r.String(), digest))
}

// add records that r holds the blob, in memory and in the ledger.
func (b *blobTracker) add(r *registry.Repo, digest string) {
	b.mu.Lock()
	k := blobKey(r, digest)
	if b.present[k] == nil {
		b.present[k] = map[string]bool{}
	}
	b.present[k][r.Name] = true
	b.mu.Unlock()
	if b.write {
		_ = b.ledger.RecordBlobs(r.String(), []string{digest})
	}
}

// mountFrom returns a repository of r's registry known to hold the blob.
func (b *blobTracker) mountFrom(r *registry.Repo, digest string) string {
	b.mu.Lock()
	var cands []string
	for repo := range b.present[blobKey(r, digest)] {
		cands = append(cands, repo)
	}
	b.mu.Unlock()
	if b.useLedger {
		for _, full := range b.ledger.ReposWithBlob(r.Registry, digest) {
			cands = append(cands, strings.TrimPrefix(full, r.Registry+"/"))
		}
	}
	best := ""
	for _, repo := range cands {
		if repo != r.Name && (best == "" || repo < best) { // deterministic
			best = repo
		}
	}
	return best
}

// forget drops what is known of r, in memory and in the ledger, after the
// registry contradicted it.
func (b *blobTracker) forget(r *registry.Repo) {
	b.mu.Lock()
	for _, repos := range b.present {
		delete(repos, r.Name)
	}
	prefix := r.Host() + "/" + r.Name + "@"
	for k := range b.manifests {
		if strings.HasPrefix(k, prefix) {
			delete(b.manifests, k)
		}
	}
	b.mu.Unlock()
	if b.write {
		_ = b.ledger.Invalidate(r.String(), "")
	}
}

// claim makes the caller the uploader of digest to r's registry, or returns
// the flight already under way.
func (b *blobTracker) claim(r *registry.Repo, digest string) (f *flight, leader bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := blobKey(r, digest)
	if f, ok := b.flights[k]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{}), repo: r.Name}
	b.flights[k] = f
	return f, true
}

func (b *blobTracker) land(r *registry.Repo, digest string, f *flight, err error) {
	if err == nil {
		b.add(r, digest)
	}
	b.mu.Lock()
	delete(b.flights, blobKey(r, digest))
	b.mu.Unlock()
	f.err = err
	close(f.done)
}

func (b *blobTracker) hasManifest(r *registry.Repo, digest string) bool {
	b.mu.Lock()
	known := b.manifests[r.Host()+"/"+r.Name+"@"+digest]
	b.mu.Unlock()
	if known {
		return true
	}
	if b.useLedger {
		_, ok := b.ledger.Manifest(r.String() + "@" + digest)
		return ok
	}
	return false
}

// manifestPresent records that r holds the manifest digest (a child, or a
// root pushed by digest), in memory and in the ledger.
func (b *blobTracker) manifestPresent(r *registry.Repo, digest string) {
	b.mu.Lock()
	b.manifests[r.Host()+"/"+r.Name+"@"+digest] = true
	b.mu.Unlock()
	if b.write {
		_ = b.ledger.RecordManifest(r.String()+"@"+digest, ledger.Entry{Digest: digest})
	}
}

// copyBlobs puts every blob into every target, blobs in parallel.
func (e *Engine) copyBlobs(ctx context.Context, src *registry.Repo, blobs []blobDesc, targets []*target) {
	var wg sync.WaitGroup
	limit := make(chan struct{}, e.opt.Concurrency)
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		for _, t := range targets {
			wg.Add(1)
			limit <- struct{}{}
			go func() {
				defer func() { <-limit; wg.Done() }()
				if t.failed() || ctx.Err() != nil {
					return
				}
				n, err := e.ensureBlob(ctx, src, b, t.repo)
				t.addBytes(n)
				if err != nil {
					t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
				}
			}()
		}
	}
	wg.Wait()
}

// planBlobs counts, per target, the bytes a sync would upload: blobs the
// destination lacks and cannot mount, once per destination registry.
func (e *Engine) planBlobs(ctx context.Context, src *registry.Repo, blobs []blobDesc, targets []*target) {
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		for _, t := range targets {
			if t.failed() || e.blobs.has(t.repo, b.Digest) {
				continue
			}
			ok, err := t.repo.HeadBlob(ctx, b.Digest)
			if err != nil {
				t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
				continue
			}
			mountable := e.blobs.mountFrom(t.repo, b.Digest) != "" || (src.Host() == t.repo.Host() && src.Name != t.repo.Name)
			if !ok && !mountable {
				t.addBytes(b.Size)
			}
			e.blobs.add(t.repo, b.Digest) // later targets on this registry would mount it
		}
	}
}

// ensureBlob makes the blob present in dst: known → HEAD → mount from a
// repository of the same registry → upload (once per registry; concurrent
// askers wait for the upload and mount from it). It returns bytes uploaded.
func (e *Engine) ensureBlob(ctx context.Context, src *registry.Repo, b blobDesc, dst *registry.Repo) (int64, error) {
	if e.blobs.has(dst, b.Digest) {
		return 0, nil
	}
	ok, err := dst.HeadBlob(ctx, b.Digest)
	if err != nil {
		return 0, err
	}
	if ok {
		e.blobs.add(dst, b.Digest)
		return 0, nil
	}
	for round := 0; ; round++ {
		from := e.blobs.mountFrom(dst, b.Digest)
		if from == "" && src.Host() == dst.Host() && src.Name != dst.Name {
			from = src.Name // same registry: mount straight from the source
		}
		location := ""
		if from != "" {
			loc, mounted, err := dst.StartUpload(ctx, b.Digest, from)
			if err != nil {
				return 0, err
			}
			if mounted {
				e.blobs.add(dst, b.Digest)
				e.mounted.Add(1)
				e.log.Debug("mounted blob", "digest", b.Digest, "into", dst.String(), "from", from)
				return 0, nil
			}
			location = loc // the registry declined the mount and opened an upload
		}
		f, leader := e.blobs.claim(dst, b.Digest)
		if !leader && round < 3 {
			select {
			case <-f.done:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			if f.err == nil && f.repo == dst.Name {
				return 0, nil
			}
			continue // mount from the repository it landed in, or take over
		}
		n, err := e.upload(ctx, src, b, dst, location)
		if leader {
			e.blobs.land(dst, b.Digest, f, err)
		} else if err == nil {
			e.blobs.add(dst, b.Digest)
		}
		return n, err
	}
}

// upload streams the blob from src into dst: no disk, no whole-blob buffer,
// the digest checked while streaming so a corrupt read never completes a
// PUT. A transient failure restarts the upload from a fresh read.
func (e *Engine) upload(ctx context.Context, src *registry.Repo, b blobDesc, dst *registry.Repo, location string) (int64, error) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-e.sem }()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			location = ""
			e.log.Debug("restarting upload", "digest", b.Digest, "into", dst.String(), "error", lastErr)
		}
		n, err := e.uploadOnce(ctx, src, b, dst, location)
		if err == nil {
			e.uploaded.Add(1)
			e.bytes.Add(n)
			return n, nil
		}
		lastErr = err
		if registry.IsPermanent(err) || ctx.Err() != nil {
			break
		}
	}
	return 0, lastErr
}

func (e *Engine) uploadOnce(ctx context.Context, src *registry.Repo, b blobDesc, dst *registry.Repo, location string) (int64, error) {
	if location == "" {
		loc, _, err := dst.StartUpload(ctx, b.Digest, "")
		if err != nil {
			return 0, err
		}
		location = loc
	}
	rc, size, err := src.GetBlob(ctx, b.Digest)
	if err != nil {
		return 0, fmt.Errorf("reading from %s: %w", src, err)
	}
	defer rc.Close()
	if e.opt.OnPlanned != nil {
		e.opt.OnPlanned(b.Size)
	}
	if size >= 0 && b.Size > 0 && size != b.Size {
		return 0, registry.Permanent(fmt.Errorf("source sent %d bytes, the manifest says %d", size, b.Size))
	}
	if size < 0 {
		size = b.Size
	}
	vr, err := newVerifier(rc, b.Digest, size)
	if err != nil {
		return 0, err
	}
	vr.progress = e.opt.OnBytes
	if err := dst.PutUpload(ctx, location, b.Digest, size, vr); err != nil {
		if vr.err != nil {
			return 0, vr.err
		}
		return 0, err
	}
	return vr.n, nil
}

// verifier passes a blob through while hashing it; at the end it fails the
// read (and so the PUT carrying it) when the digest or size is wrong.
type verifier struct {
	r        io.Reader
	h        hash.Hash
	want     string
	size     int64
	n        int64
	err      error
	progress func(int64)
}

func newVerifier(r io.Reader, digest string, size int64) (*verifier, error) {
	if !strings.HasPrefix(digest, "sha256:") {
		return nil, registry.Permanent(fmt.Errorf("unsupported digest algorithm in %s", digest))
	}
	return &verifier{r: r, h: sha256.New(), want: digest, size: size}, nil
}

var errDigestMismatch = errors.New("digest mismatch")

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.progress != nil && n > 0 {
		v.progress(int64(n))
	}
	if v.size >= 0 && v.n > v.size {
		v.err = registry.Permanent(fmt.Errorf("source sent more than %d bytes", v.size))
		return n, v.err
	}
	if err == io.EOF {
		got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
		if got != v.want {
			v.err = registry.Permanent(fmt.Errorf("%w: source blob hashes to %s", errDigestMismatch, got))
			return n, v.err
		}
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("source blob ended after %d of %d bytes", v.n, v.size)
			return n, v.err
		}
	} else if err != nil {
		v.err = err
	}
	return n, err
}
