package engine

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// ProgressKind says what a Progress event reports.
type ProgressKind int

const (
	// ProgressResolving opens the run: Images source references are about to
	// be resolved (manifests read, destinations asked).
	ProgressResolving ProgressKind = iota
	// ProgressResolved: one source reference is resolved; its bytes to upload
	// came (or come) as ProgressBytes events with Work > 0.
	ProgressResolved
	// ProgressReady: every source reference is resolved; from now on the
	// bytes to upload only shrink (as blobs turn out present, mounted or no
	// longer needed), unless a registry declines a mount.
	ProgressReady
	// ProgressStarted: the copy of Image began (again, for a retry).
	ProgressStarted
	// ProgressBytes: Image's bytes to upload changed by Work, its bytes
	// uploaded by Done (negative when a failed attempt is rolled back).
	ProgressBytes
	// ProgressFinished: every job of Image has its result.
	ProgressFinished
)

// Progress is one change in what a sync has left to do, for displays. The
// run's bytes to upload are the sum of the Work fields, its bytes uploaded
// the sum of the Done fields; each blob counts once per destination
// registry, under the image that first needed it.
type Progress struct {
	Kind  ProgressKind
	Image string // the source reference
	// Destinations: ProgressStarted: where Image is being copied to.
	Destinations []string
	Work         int64
	Done         int64
	Images       int // ProgressResolving: how many source references
}

// imageKey carries the unit being copied in a context, so that blob uploads
// deep in the engine know which image their bytes belong to.
type imageKey struct{}

func withUnit(ctx context.Context, u *unit) context.Context {
	return context.WithValue(ctx, imageKey{}, u)
}

func unitOf(ctx context.Context) *unit {
	u, _ := ctx.Value(imageKey{}).(*unit)
	return u
}

// workTracker accounts the bytes a run has to upload: per destination
// registry and blob digest, counted once under the first image that needs
// it, settled when the blob is uploaded, found present or mounted, and
// dropped when no image that needs it is left.
type workTracker struct {
	emit func(Progress)

	mu     sync.Mutex
	keys   map[string]*workItem // registry host + "@" + digest
	byUnit map[*unit][]string
}

type workItem struct {
	size    int64
	owner   string // the image whose bytes these are
	refs    map[*unit]bool
	settled bool // uploaded, present or mounted
	counted bool // part of the total now
}

func newWorkTracker(emit func(Progress)) *workTracker {
	return &workTracker{emit: emit, keys: map[string]*workItem{}, byUnit: map[*unit][]string{}}
}

// need records that u needs the blob key (size bytes) uploaded.
func (w *workTracker) need(u *unit, key string, size int64) {
	if w == nil {
		return
	}
	w.mu.Lock()
	it, ok := w.keys[key]
	if !ok {
		it = &workItem{size: size, owner: u.src.String(), refs: map[*unit]bool{}}
		w.keys[key] = it
	}
	if !it.refs[u] {
		it.refs[u] = true
		w.byUnit[u] = append(w.byUnit[u], key)
	}
	add := !it.settled && !it.counted
	if add {
		it.counted = true
	}
	w.mu.Unlock()
	if add {
		w.emit(Progress{Kind: ProgressBytes, Image: it.owner, Work: size})
	}
}

// present settles key without an upload: found at the destination, or
// mounted there. Its bytes leave the total.
func (w *workTracker) present(key string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	it, ok := w.keys[key]
	drop := ok && !it.settled && it.counted
	if ok {
		it.settled, it.counted = true, false
	}
	w.mu.Unlock()
	if drop {
		w.emit(Progress{Kind: ProgressBytes, Image: it.owner, Work: -it.size})
	}
}

// uploading is called when an upload of key starts; it returns the image
// its bytes are reported under. A blob the resolution did not count (a
// registry declined a mount) joins the total here.
func (w *workTracker) uploading(ctx context.Context, key string, size int64) string {
	if w == nil {
		return ""
	}
	u := unitOf(ctx)
	w.mu.Lock()
	it, ok := w.keys[key]
	if !ok {
		owner := ""
		if u != nil {
			owner = u.src.String()
		}
		it = &workItem{size: size, owner: owner, refs: map[*unit]bool{}}
		w.keys[key] = it
	}
	if u != nil && !it.refs[u] {
		it.refs[u] = true
		w.byUnit[u] = append(w.byUnit[u], key)
	}
	add := !it.counted
	it.settled, it.counted = false, true
	w.mu.Unlock()
	if add {
		w.emit(Progress{Kind: ProgressBytes, Image: it.owner, Work: size})
	}
	return it.owner
}

// uploaded settles key after an upload: its bytes stay in the total, as done.
func (w *workTracker) uploaded(key string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	if it, ok := w.keys[key]; ok {
		it.settled = true
	}
	w.mu.Unlock()
}

// bytes reports n bytes uploaded (or rolled back) for image.
func (w *workTracker) bytes(image string, n int64) {
	if w == nil || n == 0 {
		return
	}
	w.emit(Progress{Kind: ProgressBytes, Image: image, Done: n})
}

// release is called when u is finished: the blobs only it needed and that
// were never settled (it failed, or was never started) leave the total.
func (w *workTracker) release(u *unit) {
	if w == nil {
		return
	}
	var drops []Progress
	w.mu.Lock()
	for _, key := range w.byUnit[u] {
		it := w.keys[key]
		delete(it.refs, u)
		if len(it.refs) == 0 && it.counted && !it.settled {
			it.counted = false
			drops = append(drops, Progress{Kind: ProgressBytes, Image: it.owner, Work: -it.size})
		}
	}
	delete(w.byUnit, u)
	w.mu.Unlock()
	for _, p := range drops {
		w.emit(p)
	}
}

// resolve decides every unit ahead of the copy (bounded by Concurrency) and
// counts the blobs each destination registry lacks, so that the bytes to
// upload are known before the first upload and only shrink afterwards.
// The requests are those the copy would send anyway: the decisions and
// manifests are kept for each unit's first attempt.
func (e *Engine) resolve(ctx context.Context, units []*unit) {
	emit := e.work.emit
	emit(Progress{Kind: ProgressResolving, Images: len(units)})
	var wg sync.WaitGroup
	limit := make(chan struct{}, e.opt.Concurrency*unitsPerSlot) // decisions are bound by latency
	for _, u := range units {
		if ctx.Err() != nil || closed(e.opt.Stop) {
			break
		}
		limit <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-limit; wg.Done() }()
			defer func() {
				if recover() != nil { // decided again by runUnit, which reports it
					u.decided = nil
				}
			}()
			if ctx.Err() != nil || closed(e.opt.Stop) {
				return
			}
			d := e.decide(ctx, u)
			u.decided = d
			if len(d.targets) > 0 {
				// Children that do not fit the pull quota are not read
				// ahead: the copy stops the image (reserveChildren).
				if mctx, release, err := e.reserveChildren(ctx, d.src); err == nil {
					defer release()
					e.measure(mctx, u, d.src, d.src.raw, d.src.desc.MediaType, d.targets)
				}
			}
			emit(Progress{Kind: ProgressResolved, Image: u.src.String()})
		}()
	}
	wg.Wait()
	emit(Progress{Kind: ProgressReady})
}

// measure walks a manifest tree as copyManifest will (walkTree), counting
// for each target the blobs that are neither known present nor mountable.
// Child manifests read here are kept for the copy.
func (e *Engine) measure(ctx context.Context, u *unit, src *source, raw []byte, mediaType types.MediaType, targets []*target) {
	root := manifest{digest: oci.Digest(raw), mediaType: mediaType, raw: raw}
	var mu sync.Mutex
	need := map[string][]*target{root.digest: targets}
	walkTree(ctx, src, root, walker{
		// Children read at once, as the copy does: one round trip for
		// all of them, not one each.
		parallel: true,
		enter: func(ctx context.Context, c oci.Entry) bool {
			var ts []*target
			for _, t := range targets {
				if t.force || !e.blobs.hasManifest(t.repo, c.Digest) {
					ts = append(ts, t)
				}
			}
			mu.Lock()
			need[c.Digest] = ts
			mu.Unlock()
			return len(ts) > 0
		},
		visit: func(ctx context.Context, m manifest, blobs []oci.Blob) {
			mu.Lock()
			ts := need[m.digest]
			mu.Unlock()
			for _, b := range blobs {
				for _, t := range ts {
					if e.blobs.has(t.repo, b.Digest) || e.mountSource(src.repo, t.repo, b.Digest) != "" {
						continue
					}
					e.work.need(u, blobKey(t.repo, b.Digest), b.Size)
				}
			}
		},
		fail: func(string, error) {}, // the copy meets it again and reports it
	})
}
