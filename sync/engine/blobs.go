package engine

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/imagesync/imagesync/oci"
)

// copyBlobs puts every blob into every target, blobs in parallel. For one
// blob, the targets that need an upload (not known, not present, not
// mountable) on different registries share one read of the source: the
// blob is fetched once however many registries receive it.
func (e *Engine) copyBlobs(ctx context.Context, src Store, blobs []oci.Blob, targets []*target) {
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

func (e *Engine) copyBlob(ctx context.Context, src Store, b oci.Blob, targets []*target) {
	var slots []*uploadSlot
	var owners, waiters []*target
	var flights []*flight
	for _, t := range targets {
		if t.failed() || ctx.Err() != nil {
			continue
		}
		p, err := e.prepareBlob(ctx, src, b, t.repo, true, !t.exists)
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
			if s.err == nil {
				e.probeMounts(ctx, s.dst, b.Digest)
			}
			owners[i].addBytes(s.n)
			if s.err != nil {
				owners[i].fail(fmt.Errorf("blob %s: %w", b.Digest, s.err))
			}
		}
	}
	for _, t := range waiters {
		n, err := e.ensureBlob(ctx, src, b, t.repo, !t.exists)
		t.addBytes(n)
		if err != nil {
			t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
		}
	}
}

// planBlobs counts, per target, the bytes a sync would upload: blobs the
// destination lacks and cannot mount, once per destination registry.
func (e *Engine) planBlobs(ctx context.Context, src Store, blobs []oci.Blob, targets []*target) {
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
			mountable := e.mountSource(src, t.repo, b.Digest) != ""
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
// registry, and finally claims the registry-wide upload. For a fresh
// destination (its tag was missing: its blobs likely are too) on a registry
// whose mounts answer for present blobs, the question and the mount are one
// POST (see checkBlob).
func (e *Engine) prepareBlob(ctx context.Context, src Store, b oci.Blob, dst Store, first, fresh bool) (blobPrep, error) {
	if e.blobs.has(dst, b.Digest) {
		e.work.present(blobKey(dst, b.Digest))
		return blobPrep{done: true}, nil
	}
	if r, ok := dst.(uploadChecker); ok && fresh && e.blobs.mountState(dst) == mountsWork {
		return e.checkBlob(ctx, src, b, dst, r)
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
	from := e.mountSource(src, dst, b.Digest)
	var p blobPrep
	if from != "" {
		loc, mounted, err := dst.StartUpload(ctx, b.Digest, from)
		if err != nil {
			return blobPrep{}, err
		}
		if mounted {
			e.blobs.add(dst, b.Digest)
			e.noteMounted(dst, b.Digest, b.Size, from)
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
func (e *Engine) ensureBlob(ctx context.Context, src Store, b oci.Blob, dst Store, fresh bool) (int64, error) {
	for round := 0; ; round++ {
		p, err := e.prepareBlob(ctx, src, b, dst, round == 0, fresh)
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
			if p.flight.err == nil && p.flight.repo == dst.Path() {
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
		if slot.err == nil {
			e.probeMounts(ctx, dst, b.Digest)
		}
		return slot.n, slot.err
	}
}

// checkBlob claims the registry-wide upload of the blob, then asks with one
// POST carrying a mount — from a repository known to hold the blob, or from
// dst itself — which answers "present" (201) or opens the upload session
// (202): no HEAD. Only for hosts where probeMounts saw a mount of a present
// blob answered 201; a host that then declines a mount from a repository
// that holds the blob gets HEADs from then on.
func (e *Engine) checkBlob(ctx context.Context, src Store, b oci.Blob, dst Store, check uploadChecker) (blobPrep, error) {
	var p blobPrep
	if p.flight, p.leader = e.blobs.claim(dst, b.Digest); !p.leader {
		return p, nil // another job uploads it to this registry: wait, then mount
	}
	from := e.mountSource(src, dst, b.Digest)
	loc, mounted, err := check.CheckUpload(ctx, b.Digest, from)
	if err != nil {
		e.blobs.land(dst, b.Digest, p.flight, err)
		return blobPrep{}, err
	}
	if mounted {
		e.blobs.land(dst, b.Digest, p.flight, nil)
		e.noteMounted(dst, b.Digest, b.Size, from) // from "": it was there already
		return blobPrep{done: true}, nil
	}
	if from != "" {
		e.blobs.setMounts(dst, mountsNot)
	}
	p.location = loc
	return p, nil
}

// probeMounts learns, once per registry host and run, whether a mount POST
// can stand for a HEAD there: it mounts a blob just uploaded into the
// repository that holds it, which a registry that mounts answers 201 (a
// 202's session is cancelled). Layouts answer HEADs from the file system:
// they are not probed.
func (e *Engine) probeMounts(ctx context.Context, dst Store, digest string) {
	r, ok := dst.(uploadChecker)
	if !ok || !e.blobs.startProbe(dst) {
		return
	}
	loc, mounted, err := r.CheckUpload(ctx, digest, "")
	switch {
	case err != nil:
		e.blobs.setMounts(dst, mountsUnknown) // try again after another upload
	case mounted:
		e.blobs.setMounts(dst, mountsWork)
	default:
		dst.CancelUpload(ctx, loc)
		e.blobs.setMounts(dst, mountsNot)
	}
	e.log.Debug("registry mounts", "host", dst.Host(), "answer present", mounted, "error", err)
}

// mountSource is the repository of dst's registry to mount the blob from: one
// known to hold it, else the source when it is on the same registry ("": none).
func (e *Engine) mountSource(src, dst Store, digest string) string {
	from := e.blobs.mountFrom(dst, digest)
	if from == "" && src.Host() == dst.Host() && src.Path() != dst.Path() {
		from = src.Path() // same registry: mount straight from the source
	}
	return from
}

// noteMounted counts a blob now present at dst: mounted from another
// repository (from), or found there by a mount check (from "").
func (e *Engine) noteMounted(dst Store, digest string, size int64, from string) {
	e.work.present(blobKey(dst, digest))
	if from != "" {
		e.mounted.Add(1)
		e.mountedBytes.Add(size)
		e.log.Debug("mounted blob", "digest", digest, "into", dst.String(), "from", from)
	}
}
