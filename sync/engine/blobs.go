package engine

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

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

// copyBlobs puts every blob into every target, blobs in parallel. For one
// blob, the targets that need an upload (not known, not present, not
// mountable) on different registries share one read of the source: the
// blob is fetched once however many registries receive it.
func (e *Engine) copyBlobs(ctx context.Context, src *registry.Repo, blobs []blobDesc, targets []*target) {
	var g errgroup.Group
	g.SetLimit(e.opt.Concurrency)
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		g.Go(func() error {
			e.copyBlob(ctx, src, b, targets)
			return nil
		})
	}
	_ = g.Wait() // failures are on the targets
}

func (e *Engine) copyBlob(ctx context.Context, src *registry.Repo, b blobDesc, targets []*target) {
	var slots []*uploadSlot
	var owners, waiters []*target
	var flights []*flight
	for _, t := range targets {
		if t.failed() || ctx.Err() != nil {
			continue
		}
		p, err := e.prepareBlob(ctx, src, b, t.repo, true)
		switch {
		case err != nil:
			t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
		case p.done:
		case p.leader:
			slots = append(slots, &uploadSlot{dst: t.repo, location: p.location})
			owners = append(owners, t)
			flights = append(flights, p.flight)
		default: // another job is uploading it to this registry
			t.repo.CancelUpload(ctx, p.location) // a declined mount's session: not used
			waiters = append(waiters, t)
		}
	}
	if len(slots) > 0 {
		e.upload(ctx, src, b, slots)
		for i, s := range slots {
			e.blobs.land(s.dst, b.Digest, flights[i], s.err)
			owners[i].addBytes(s.n)
			if s.err != nil {
				owners[i].fail(fmt.Errorf("blob %s: %w", b.Digest, s.err))
			}
		}
	}
	for _, t := range waiters {
		n, err := e.ensureBlob(ctx, src, b, t.repo)
		t.addBytes(n)
		if err != nil {
			t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
		}
	}
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

// blobPrep is where a blob stands for one destination before any upload.
type blobPrep struct {
	done     bool    // known, present or mounted: nothing to upload
	location string  // an upload session the registry already opened (a declined mount)
	flight   *flight // the registry-wide upload this destination leads or waits for
	leader   bool
}

// prepareBlob checks what the run and the ledger know, then (first only)
// asks the destination, then tries a mount from a repository of the same
// registry, and finally claims the registry-wide upload.
func (e *Engine) prepareBlob(ctx context.Context, src *registry.Repo, b blobDesc, dst *registry.Repo, first bool) (blobPrep, error) {
	if e.blobs.has(dst, b.Digest) {
		e.work.present(blobKey(dst, b.Digest))
		return blobPrep{done: true}, nil
	}
	if first {
		ok, err := dst.HeadBlob(ctx, b.Digest)
		if err != nil {
			return blobPrep{}, err
		}
		if ok {
			e.blobs.add(dst, b.Digest)
			e.work.present(blobKey(dst, b.Digest))
			return blobPrep{done: true}, nil
		}
	}
	from := e.blobs.mountFrom(dst, b.Digest)
	if from == "" && src.Host() == dst.Host() && src.Name != dst.Name {
		from = src.Name // same registry: mount straight from the source
	}
	var p blobPrep
	if from != "" {
		loc, mounted, err := dst.StartUpload(ctx, b.Digest, from)
		if err != nil {
			return blobPrep{}, err
		}
		if mounted {
			e.blobs.add(dst, b.Digest)
			e.work.present(blobKey(dst, b.Digest))
			e.mounted.Add(1)
			e.log.Debug("mounted blob", "digest", b.Digest, "into", dst.String(), "from", from)
			return blobPrep{done: true}, nil
		}
		p.location = loc // the registry declined the mount and opened an upload
	}
	p.flight, p.leader = e.blobs.claim(dst, b.Digest)
	return p, nil
}

// ensureBlob makes the blob present in one destination: see prepareBlob;
// when another job is uploading it to the same registry, it waits and then
// mounts from where it landed. It returns the bytes it uploaded.
func (e *Engine) ensureBlob(ctx context.Context, src *registry.Repo, b blobDesc, dst *registry.Repo) (int64, error) {
	for round := 0; ; round++ {
		p, err := e.prepareBlob(ctx, src, b, dst, round == 0)
		if err != nil || p.done {
			return 0, err
		}
		if !p.leader && round < 3 {
			dst.CancelUpload(ctx, p.location) // a declined mount's session: not used
			select {
			case <-p.flight.done:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			if p.flight.err == nil && p.flight.repo == dst.Name {
				return 0, nil
			}
			continue // mount from the repository it landed in, or take over
		}
		slot := &uploadSlot{dst: dst, location: p.location}
		e.upload(ctx, src, b, []*uploadSlot{slot})
		if p.leader {
			e.blobs.land(dst, b.Digest, p.flight, slot.err)
		} else if slot.err == nil {
			e.blobs.add(dst, b.Digest)
		}
		return slot.n, slot.err
	}
}

// uploadSlot is one destination of an upload.
type uploadSlot struct {
	dst      *registry.Repo
	location string // an open upload session, or "" to open one
	n        int64  // bytes uploaded
	err      error
	image    string       // progress: the image these bytes count for
	sent     atomic.Int64 // progress: bytes reported in this attempt
}

// upload streams the blob from src into every slot's destination with one
// read of the source: no disk, no whole-blob buffer, the digest checked as it
// streams so a corrupt read never completes a PUT. Slots that fail
// transiently restart together from a fresh read (three attempts in all).
func (e *Engine) upload(ctx context.Context, src *registry.Repo, b blobDesc, slots []*uploadSlot) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		for _, s := range slots {
			s.err = ctx.Err()
			s.dst.CancelUpload(ctx, s.location)
		}
		return
	}
	defer func() { <-e.sem }()
	for _, s := range slots {
		s.image = e.work.uploading(ctx, blobKey(s.dst, b.Digest), b.Size)
	}
	pending := slots
	for attempt := 0; attempt < 3 && len(pending) > 0; attempt++ {
		if attempt > 0 {
			for _, s := range pending {
				e.log.Debug("restarting upload", "digest", b.Digest, "into", s.dst.String(), "error", s.err)
				s.location = ""
			}
		}
		e.uploadOnce(ctx, src, b, pending)
		var again []*uploadSlot
		for _, s := range pending {
			if s.err != nil { // its bytes were not uploaded after all
				e.work.bytes(s.image, -s.sent.Swap(0))
			}
			switch {
			case s.err == nil:
				e.uploaded.Add(1)
				e.bytes.Add(s.n)
				e.work.uploaded(blobKey(s.dst, b.Digest))
			case !registry.IsPermanent(s.err) && ctx.Err() == nil:
				again = append(again, s)
			}
		}
		pending = again
	}
}

// uploadOnce is one attempt: open the sessions, one GET, and one PUT per
// destination fed from it (through a pipe each when there are several).
func (e *Engine) uploadOnce(ctx context.Context, src *registry.Repo, b blobDesc, slots []*uploadSlot) {
	var live []*uploadSlot
	for _, s := range slots {
		s.err, s.n = nil, 0
		if s.location == "" {
			loc, _, err := s.dst.StartUpload(ctx, b.Digest, "")
			if err != nil {
				s.err = err
				continue
			}
			s.location = loc
		}
		live = append(live, s)
	}
	if len(live) == 0 {
		return
	}
	failAll := func(err error) {
		for _, s := range live {
			s.err = err
			s.dst.CancelUpload(ctx, s.location) // abandoned: nothing will be sent to it
			s.location = ""
		}
	}
	rc, size, err := src.GetBlob(ctx, b.Digest)
	if err != nil {
		failAll(fmt.Errorf("reading from %s: %w", src, err))
		return
	}
	defer rc.Close()
	if size >= 0 && b.Size > 0 && size != b.Size {
		failAll(registry.Permanent(fmt.Errorf("source sent %d bytes, the manifest says %d", size, b.Size)))
		return
	}
	if size < 0 {
		size = b.Size
	}
	vr, err := newVerifier(rc, b.Digest, size)
	if err != nil {
		failAll(err)
		return
	}
	if e.opt.OnPlanned != nil {
		e.opt.OnPlanned(b.Size * int64(len(live)))
	}
	if e.opt.OnBytes != nil || e.work != nil {
		copies := int64(len(live))
		vr.progress = func(n int64) {
			if e.opt.OnBytes != nil {
				e.opt.OnBytes(n * copies)
			}
			for _, s := range live {
				s.sent.Add(n)
				e.work.bytes(s.image, n)
			}
		}
	}
	if len(live) == 1 {
		s := live[0]
		if s.err = s.dst.PutUpload(ctx, s.location, b.Digest, size, vr); s.err == nil {
			s.n = vr.n
		} else if vr.err != nil {
			s.err = vr.err
		}
		return
	}
	fanOut(ctx, vr, b.Digest, size, live)
}

// fanOut feeds one verified source stream to several PUTs in lockstep; a
// destination that fails drops out without stopping the others.
func fanOut(ctx context.Context, vr *verifier, digest string, size int64, slots []*uploadSlot) {
	writers := make([]*io.PipeWriter, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		pr, pw := io.Pipe()
		writers[i] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.err = s.dst.PutUpload(ctx, s.location, digest, size, pr)
			pr.CloseWithError(cmpErr(s.err, io.ErrClosedPipe)) // unblocks a writer the PUT no longer reads
		}()
	}
	buf := make([]byte, 256<<10)
	alive := len(writers)
	var readErr error
	for alive > 0 {
		n, err := vr.Read(buf)
		if n > 0 {
			for i, w := range writers {
				if w == nil {
					continue
				}
				if _, werr := w.Write(buf[:n]); werr != nil {
					writers[i], alive = nil, alive-1
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	for _, w := range writers {
		if w == nil {
			continue
		}
		if readErr != nil {
			w.CloseWithError(readErr) // the PUT fails: the registry never commits a short or corrupt blob
		} else {
			w.Close()
		}
	}
	wg.Wait()
	for _, s := range slots {
		switch {
		case s.err == nil:
			s.n = vr.n
		case readErr != nil:
			s.err = readErr
		}
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// verifier passes a blob through while hashing it; at the end it fails the
// read (and so the PUT carrying it) when the digest or size is wrong.
type verifier struct {
	r        io.Reader
	h        hash.Hash
	alg      string
	want     string
	size     int64
	n        int64
	err      error
	progress func(int64)
}

func newVerifier(r io.Reader, digest string, size int64) (*verifier, error) {
	if !registry.ValidDigest(digest) {
		return nil, registry.Permanent(fmt.Errorf("unsupported or malformed digest %q", clip(digest)))
	}
	alg, _, _ := strings.Cut(digest, ":")
	h := sha256.New()
	if alg == "sha512" {
		h = sha512.New()
	}
	return &verifier{r: r, h: h, alg: alg, want: digest, size: size}, nil
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
		got := v.alg + ":" + hex.EncodeToString(v.h.Sum(nil))
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
