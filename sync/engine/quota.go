package engine

import "github.com/imagesync/imagesync/oci"

// pullChecker is a source that counts manifest reads against a pull quota
// (a registry that sends Docker Hub's ratelimit headers): CheckPulls says
// whether n more fit above the reserve.
type pullChecker interface {
	CheckPulls(n int) error
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

// checkQuota stops a copy before it reads an index's children when the
// source's pull quota cannot pay for them: nothing is written, and the
// quota is kept for the images that fit (the error says when the window
// resets). Plans are not stopped: they show the pulls a sync needs.
func (e *Engine) checkQuota(src *source) error {
	q, ok := src.repo.(pullChecker)
	if !ok || e.opt.DryRun {
		return nil
	}
	n := src.childPulls()
	if n == 0 {
		return nil
	}
	return q.CheckPulls(n)
}
