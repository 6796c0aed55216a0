package engine

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/imagesync/imagesync/oci"
)

// copyBlobs puts every blob into every target, blobs in parallel. For one
// blob, the targets that need an upload (not known, not present, not
// mountable) on different registries share one read of the source: the
// blob is fetched once however many registries receive it.
func (x *transfer) copyBlobs(ctx context.Context, src Store, blobs []oci.Blob, targets []*target) {
	var g errgroup.Group
	g.SetLimit(x.concurrency)
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		g.Go(func() error {
			x.copyBlob(ctx, src, b, targets)
			return nil
		})
	}
	_ = g.Wait() // failures are on the targets
}

func (x *transfer) copyBlob(ctx context.Context, src Store, b oci.Blob, targets []*target) {
	var slots []*uploadSlot
	var owners, waiters []*target
	var flights []*flight
	var pre *prefetch
	early := len(alive(targets)) == 1 // one destination: its check may send the GET along
	for _, t := range targets {
		if t.failed() || ctx.Err() != nil {
			continue
		}
		p, err := x.prepareBlob(ctx, src, b, t.repo, true, !t.exists, early)
		if p.pre != nil {
			pre = p.pre
		}
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
		x.upload(ctx, src, b, slots, pre)
		for i, s := range slots {
			if s.err == nil {
				x.probeMounts(ctx, s.dst, b.Digest) // before the waiters mount from there: see probeMounts
			}
			x.blobs.land(s.dst, b.Digest, flights[i], s.err)
			owners[i].addBytes(s.n)
			if s.err != nil {
				owners[i].fail(fmt.Errorf("blob %s: %w", b.Digest, s.err))
			}
		}
	}
	for _, t := range waiters {
		n, err := x.ensureBlob(ctx, src, b, t.repo, !t.exists)
		t.addBytes(n)
		if err != nil {
			t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
		}
	}
}

// planBlobs counts, per target, the bytes a sync would upload: blobs the
// destination lacks and cannot mount, once per destination registry.
func (x *transfer) planBlobs(ctx context.Context, src Store, blobs []oci.Blob, targets []*target) {
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		for _, t := range targets {
			if t.failed() || x.blobs.has(t.repo, b.Digest) {
				continue
			}
			ok, err := t.repo.HeadBlob(ctx, b.Digest)
			if err != nil {
				t.fail(fmt.Errorf("blob %s: %w", b.Digest, err))
				continue
			}
			mountable := x.mountSource(src, t.repo, b.Digest) != ""
			if !ok && !mountable {
				t.addBytes(b.Size)
			}
			x.blobs.add(t.repo, b.Digest) // later targets on this registry would mount it
		}
	}
}

// blobPrep is where a blob stands for one destination before any upload.
type blobPrep struct {
	done     bool    // known, present or mounted: nothing to upload
	location string  // an upload session the registry already opened (a declined mount)
	flight   *flight // the registry-wide upload this destination leads or waits for
	leader   bool
	// pre is the source GET sent with the check (it holds a transfer
	// slot); only for a leader that uploads.
	pre *prefetch
}

// prepareBlob checks what the run and the ledger know, then (first only)
// asks the destination, then tries a mount from a repository of the same
// registry, and finally claims the registry-wide upload. For a fresh
// destination (its tag was missing: its blobs likely are too) on a registry
// whose mounts answer for present blobs, or in a repository that was missing
// (newRepo), the question and the mount are one POST (see checkBlob).
//
// early lets the check send the source GET along when a transfer slot is
// free at once (see checkBlob).
func (x *transfer) prepareBlob(ctx context.Context, src Store, b oci.Blob, dst Store, first, fresh, early bool) (blobPrep, error) {
	if x.blobs.has(dst, b.Digest) {
		x.work.present(blobKey(dst, b.Digest))
		return blobPrep{done: true}, nil
	}
	if r, ok := dst.(uploadChecker); ok && fresh && (x.blobs.mountState(dst) == mountsWork || x.newRepo(ctx, dst)) {
		return x.checkBlob(ctx, src, b, dst, r, early)
	}
	if first {
		ok, err := dst.HeadBlob(ctx, b.Digest)
		if err != nil {
			return blobPrep{}, err
		}
		if ok {
			x.blobs.add(dst, b.Digest)
			x.work.present(blobKey(dst, b.Digest))
			return blobPrep{done: true}, nil
		}
	}
	var p blobPrep
	if from := x.mountSource(src, dst, b.Digest); from != "" {
		// One mount per repository: the other jobs of dst wait for it.
		f, leader := x.blobs.claimRepo(dst, b.Digest)
		if !leader {
			select {
			case <-f.done:
			case <-ctx.Done():
				return blobPrep{}, ctx.Err()
			}
			if f.err == nil {
				x.work.present(blobKey(dst, b.Digest))
				return blobPrep{done: true}, nil
			}
		} else {
			loc, mounted, err := dst.StartUpload(ctx, b.Digest, from)
			switch {
			case err != nil:
				x.blobs.landRepo(dst, b.Digest, f, err)
				return blobPrep{}, err
			case mounted:
				x.blobs.landRepo(dst, b.Digest, f, nil)
				x.noteMounted(dst, b.Digest, b.Size, from)
				return blobPrep{done: true}, nil
			}
			x.blobs.landRepo(dst, b.Digest, f, errMountDeclined)
			p.location = loc // the registry declined the mount and opened an upload
		}
	}
	p.flight, p.leader = x.blobs.claim(dst, b.Digest)
	return p, nil
}

// newRepo reports whether dst's repository did not exist when the run first
// asked (once per repository and run, with its first blob): it held no
// blob then, and every blob this run put there since is known to the run,
// so its blobs need no HEAD. The mount check (checkBlob) stands for the
// HEAD and the POST then even on a registry whose mounts were not seen
// answering for present blobs: a session it opens (202) is what a missed
// HEAD would have led to. A repository that exists gets HEADs until the
// probe has seen mounts answer (see probeMounts): a registry that ignores
// mounts (ECR without blob mounting) is never sent a blob it holds.
func (x *transfer) newRepo(ctx context.Context, dst Store) bool {
	f, ok := dst.(repoFinder)
	if !ok {
		return false
	}
	return x.blobs.repoMissing(dst, func() bool {
		missing, err := f.Missing(ctx)
		x.log.Debug("destination repository", "repository", dst.String(), "missing", missing, "error", err)
		return err == nil && missing
	})
}

// askRepo puts newRepo's question in the background as soon as a
// destination tag is found missing, so that the answer is in when the
// blobs are checked, not one round trip after the first of them.
func (x *transfer) askRepo(ctx context.Context, dst Store) {
	if _, ok := dst.(repoFinder); ok && !x.blobs.repoAsked(dst) {
		go x.newRepo(ctx, dst)
	}
}

// errMountDeclined tells the jobs waiting on a repository's mount that it
// did not happen: they go on without it.
var errMountDeclined = errors.New("the registry declined the mount")

// ensureBlob makes the blob present in one destination: see prepareBlob;
// when another job is uploading it to the same registry, it waits and then
// mounts from where it landed. It returns the bytes it uploaded.
func (x *transfer) ensureBlob(ctx context.Context, src Store, b oci.Blob, dst Store, fresh bool) (int64, error) {
	for round := 0; ; round++ {
		p, err := x.prepareBlob(ctx, src, b, dst, round == 0, fresh, true)
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
			if _, registry := dst.(uploadChecker); registry && p.flight.err == nil {
				// It landed in another repository: mount it from there
				// at once, without claiming the blob again (a claim held
				// through every other job's mount check made waiters of
				// them all, and after three rounds they uploaded it).
				return x.mountLanded(ctx, src, b, dst, p.flight.repo)
			}
			continue // it failed there: lead, or wait for the next try
		}
		slot := &uploadSlot{dst: dst, location: p.location}
		x.upload(ctx, src, b, []*uploadSlot{slot}, p.pre)
		if slot.err == nil {
			x.probeMounts(ctx, dst, b.Digest) // before the blob is known there: see probeMounts
		}
		if p.leader {
			x.blobs.land(dst, b.Digest, p.flight, slot.err)
		} else if slot.err == nil {
			x.blobs.add(dst, b.Digest)
		}
		return slot.n, slot.err
	}
}

// mountLanded makes dst hold a blob another job just uploaded to the
// repository from of the same registry: a mount, or, when the registry
// declines it, an upload into the session the declined mount opened.
func (x *transfer) mountLanded(ctx context.Context, src Store, b oci.Blob, dst Store, from string) (int64, error) {
	for {
		if x.blobs.has(dst, b.Digest) { // another job of this repository got it meanwhile
			x.work.present(blobKey(dst, b.Digest))
			return 0, nil
		}
		f, leader := x.blobs.claimRepo(dst, b.Digest)
		if leader {
			n, err := x.mountInto(ctx, src, b, dst, from)
			x.blobs.landRepo(dst, b.Digest, f, err)
			return n, err
		}
		select { // another job of this repository mounts it: one mount each
		case <-f.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if f.err != nil {
			return 0, f.err
		}
	}
}

func (x *transfer) mountInto(ctx context.Context, src Store, b oci.Blob, dst Store, from string) (int64, error) {
	loc, mounted, err := dst.StartUpload(ctx, b.Digest, from)
	if err != nil {
		return 0, err
	}
	if mounted {
		x.noteMounted(dst, b.Digest, b.Size, from)
		return 0, nil
	}
	slot := &uploadSlot{dst: dst, location: loc}
	x.upload(ctx, src, b, []*uploadSlot{slot}, nil)
	return slot.n, slot.err
}

// checkBlob claims the registry-wide upload of the blob, then asks with one
// POST carrying a mount — from a repository known to hold the blob, or from
// dst itself — which answers "present" (201) or opens the upload session
// (202): no HEAD. Only for hosts where probeMounts saw a mount of a present
// blob answered 201 (a host that then declines a mount from a repository
// that holds the blob gets HEADs from then on), and for repositories that
// were missing (newRepo), which hold nothing a HEAD could find.
//
// With early, a blob no repository of dst's registry is known to hold (no
// mount source: it most likely has to be uploaded) is also asked of the
// source at once, GET beside the POST, when a transfer slot is free: the
// upload then starts one round trip sooner. A blob the POST finds present
// costs that GET (its body unread).
func (x *transfer) checkBlob(ctx context.Context, src Store, b oci.Blob, dst Store, check uploadChecker, early bool) (blobPrep, error) {
	var p blobPrep
	if p.flight, p.leader = x.blobs.claim(dst, b.Digest); !p.leader {
		return p, nil // another job uploads it to this registry: wait, then mount
	}
	from := x.mountSource(src, dst, b.Digest)
	if early && from == "" && x.sem.tryAcquire() {
		p.pre = startPrefetch(ctx, src, b.Digest)
	}
	unfetch := func() {
		if p.pre != nil {
			p.pre.discard()
			x.sem.release()
			p.pre = nil
		}
	}
	loc, mounted, err := check.CheckUpload(ctx, b.Digest, from)
	if err != nil {
		unfetch()
		x.blobs.land(dst, b.Digest, p.flight, err)
		return blobPrep{}, err
	}
	if mounted {
		unfetch()
		x.blobs.land(dst, b.Digest, p.flight, nil)
		x.noteMounted(dst, b.Digest, b.Size, from) // from "": it was there already
		return blobPrep{done: true}, nil
	}
	if from != "" {
		x.blobs.setMounts(dst, mountsNot)
	}
	p.location = loc
	return p, nil
}

// probeMounts learns, once per registry host and run, whether a mount POST
// can stand for a HEAD there: it mounts a blob just uploaded into the
// repository that holds it, which a registry that mounts answers 201 (a
// 202's session is cancelled). Layouts answer HEADs from the file system:
// they are not probed.
//
// It runs before the upload lands (before the jobs waiting for the blob
// mount it from that repository): distribution answers the probe by
// writing the repository's link to the blob again, not atomically, and a
// mount from there that reads the link meanwhile finds nothing and is
// declined (202) — the blob was then uploaded a second time (seen in
// TestFarLinkOverlap about once in ten runs, on both registry kinds).
func (x *transfer) probeMounts(ctx context.Context, dst Store, digest string) {
	r, ok := dst.(uploadChecker)
	if !ok || !x.blobs.startProbe(dst) {
		return
	}
	loc, mounted, err := r.CheckUpload(ctx, digest, "")
	switch {
	case err != nil:
		x.blobs.setMounts(dst, mountsUnknown) // try again after another upload
	case mounted:
		x.blobs.setMounts(dst, mountsWork)
	default:
		dst.CancelUpload(ctx, loc)
		x.blobs.setMounts(dst, mountsNot)
	}
	x.log.Debug("registry mounts", "host", dst.Host(), "answer present", mounted, "error", err)
}

// mountSource is the repository of dst's registry to mount the blob from: one
// known to hold it, else the source when it is on the same registry ("": none).
func (x *transfer) mountSource(src, dst Store, digest string) string {
	from := x.blobs.mountFrom(dst, digest)
	if from == "" && src.Host() == dst.Host() && src.Path() != dst.Path() {
		from = src.Path() // same registry: mount straight from the source
	}
	return from
}

// noteMounted counts a blob now present at dst: mounted from another
// repository (from), or found there by a mount check (from "").
func (x *transfer) noteMounted(dst Store, digest string, size int64, from string) {
	x.work.present(blobKey(dst, digest))
	if from != "" {
		x.mounted.Add(1)
		x.mountedBytes.Add(size)
		x.log.Debug("mounted blob", "digest", digest, "into", dst.String(), "from", from)
	}
}
