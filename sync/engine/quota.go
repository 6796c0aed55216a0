package engine

import (
	"context"

	"github.com/imagesync/imagesync/oci"
)

// pullReserver is a source that counts manifest reads against a pull quota
// (a registry that sends Docker Hub's ratelimit headers): ReservePulls sets
// n aside for the reads made with the context it returns, or fails when
// they do not fit above the reserve.
type pullReserver interface {
	ReservePulls(ctx context.Context, n int) (context.Context, func(), error)
}

// childPulls is how many child manifests of the source index a copy still
// has to read (those not read ahead, not written by the platform filter and
// not skipped); 0 for an image.
func (s *source) childPulls() int {
	if !s.desc.MediaType.IsIndex() {
		return 0
	}
	entries, err := oci.ParseIndex(s.raw)
	if err != nil {
		return 0 // the walk reports it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range entries {
		if _, ok := s.read[c.Digest]; ok {
			continue
		}
		if _, ok := s.made[c.Digest]; ok || s.skip[c.Digest] {
			continue
		}
		n++
	}
	return n
}

// reserveChildren sets aside the pulls an index's children need before any
// of them is read, so that a quota running out stops the image before it
// starts instead of halfway (nothing of it is written, and the quota is
// kept for the images that fit; the error says when the window resets).
// The reads made with the returned context spend the reservation; release
// gives back the rest. Plans are not stopped: they show the pulls a sync
// needs.
func (e *Engine) reserveChildren(ctx context.Context, src *source) (context.Context, func(), error) {
	q, ok := src.repo.(pullReserver)
	if !ok || e.opt.DryRun {
		return ctx, func() {}, nil
	}
	n := src.childPulls()
	if n == 0 {
		return ctx, func() {}, nil
	}
	return q.ReservePulls(ctx, n)
}
