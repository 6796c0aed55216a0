package engine

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// copyBlobs puts every blob into every target, blobs in parallel. For one
// blob, the targets that need an upload (not known, not present, not
// mountable) on different registries share one read of the source: the
// blob is fetched once however many registries receive it.
func (e *Engine) copyBlobs(ctx context.Context, src Store, blobs []blobDesc, targets []*target) {
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

func (e *Engine) copyBlob(ctx context.Context, src Store, b blobDesc, targets []*target) {
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
func (e *Engine) planBlobs(ctx context.Context, src Store, blobs []blobDesc, targets []*target) {
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
			mountable := e.blobs.mountFrom(t.repo, b.Digest) != "" || (src.Host() == t.repo.Host() && src.Path() != t.repo.Path())
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
func (e *Engine) prepareBlob(ctx context.Context, src Store, b blobDesc, dst Store, first bool) (blobPrep, error) {
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
	if from == "" && src.Host() == dst.Host() && src.Path() != dst.Path() {
		from = src.Path() // same registry: mount straight from the source
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
func (e *Engine) ensureBlob(ctx context.Context, src Store, b blobDesc, dst Store) (int64, error) {
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
		return slot.n, slot.err
	}
}
