package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// Pseudo artifact types of cosign's tag-attached artifacts (they carry no
// subject), for artifact-type filters.
const (
	CosignSignatureType   = "application/vnd.dev.cosign.artifact.sig.v1+json"
	CosignAttestationType = "application/vnd.dev.cosign.artifact.att.v1+json"
	CosignSBOMType        = "application/vnd.dev.cosign.artifact.sbom.v1+json"
)

var cosignSuffixes = []struct{ suffix, artifactType string }{
	{".sig", CosignSignatureType},
	{".att", CosignAttestationType},
	{".sbom", CosignSBOMType},
}

// Bounds on the referrers followed from one image: how deep (a signature
// of an SBOM of an image is depth 2), how many per subject and in all. A
// registry can answer any number of referrers for every digest; past a
// bound the rest are left with a warning.
const (
	maxReferrerDepth       = 8
	maxReferrersPerSubject = 128
	maxReferrersPerImage   = 512
)

// referrer is one manifest that refers to a subject: through its subject
// field (found by the referrers API or its fallback tag), or through a
// cosign tag named after the subject's digest.
type referrer struct {
	desc         oci.Entry
	artifactType string
	tag          string // cosign tag ("sha256-<hex>.sig"); "" for subject-bearing referrers
	raw          []byte
	mediaType    types.MediaType
}

// referrerIndex is an OCI image index as the referrers API and its tag
// fallback hold it.
type referrerIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	Manifests     []json.RawMessage `json:"manifests"`
}

// fallbackTag is the referrers tag schema's tag for a digest: sha256-<hex>.
func fallbackTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// referrersOf finds the referrers of subject in repo: the referrers API when
// the registry serves it, else the fallback tag; and cosign's tags. Each is
// fetched by digest and checked against the subject; wants filters by
// artifact type.
//
// known, when not nil, is the set of referrer tags the repository's tag
// listing holds: tags not in it are not asked for.
func (e *Engine) referrersOf(ctx context.Context, repo Store, subject string, wants *rules.Referrers, known map[string]bool) ([]referrer, error) {
	raw, err := referrerList(ctx, repo, subject, known)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", subject, err)
	}
	var out []referrer
	if raw != nil {
		if out, err = e.listedReferrers(ctx, repo, subject, raw, wants); err != nil {
			return nil, err
		}
	}
	cosign, err := cosignReferrers(ctx, repo, subject, wants, known)
	return append(out, cosign...), err
}

// referrerList returns the index of subject's referrers: the referrers
// API's answer, else the fallback tag's index; nil when there is none.
func referrerList(ctx context.Context, repo Store, subject string, known map[string]bool) ([]byte, error) {
	raw, err := repo.Referrers(ctx, subject)
	if !errors.Is(err, client.ErrNoReferrersAPI) {
		return raw, err
	}
	if known != nil && !known[fallbackTag(subject)] {
		return nil, nil
	}
	// HEAD first: free on Docker Hub's pull quota, and most images have no referrers.
	d, err := repo.HeadManifest(ctx, fallbackTag(subject))
	if err == nil {
		raw, _, err = repo.GetManifest(ctx, d.Digest)
	}
	if oci.IsNotFound(err) {
		return nil, nil
	}
	return raw, err
}

// listedReferrers reads the referrers an index lists (at most
// maxReferrersPerSubject), each by digest, keeping those whose subject is
// subject and whose artifact type is wanted.
func (e *Engine) listedReferrers(ctx context.Context, repo Store, subject string, raw []byte, wants *rules.Referrers) ([]referrer, error) {
	var idx referrerIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, oci.Permanent(fmt.Errorf("referrers of %s: not an index: %w", subject, err))
	}
	var out []referrer
	seen := map[string]bool{}
	for _, m := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		var d oci.Entry
		if err := json.Unmarshal(m, &d); err != nil || !oci.ValidDigest(d.Digest) {
			e.log.Warn("ignoring an invalid referrer descriptor", "repository", repo.String(), "subject", subject)
			continue
		}
		if seen[d.Digest] {
			continue
		}
		if len(seen) == maxReferrersPerSubject {
			e.log.Warn("more referrers than followed for one subject: the rest are left out", "repository", repo.String(), "subject", subject, "followed", maxReferrersPerSubject, "listed", len(idx.Manifests))
			break
		}
		seen[d.Digest] = true
		body, desc, err := repo.GetManifest(ctx, d.Digest) // checks the digest
		if oci.IsNotFound(err) {
			e.log.Warn("referrer listed but missing", "repository", repo.String(), "subject", subject, "referrer", d.Digest)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("referrer %s of %s: %w", d.Digest, subject, err)
		}
		var m2 struct {
			ArtifactType string `json:"artifactType"`
			Config       struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
			Subject *struct {
				Digest string `json:"digest"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(body, &m2); err != nil || m2.Subject == nil || m2.Subject.Digest != subject {
			e.log.Warn("ignoring a referrer whose subject is not the image", "repository", repo.String(), "subject", subject, "referrer", d.Digest)
			continue
		}
		at := m2.ArtifactType
		if at == "" {
			at = m2.Config.MediaType
		}
		if !wants.Wants(at) {
			continue
		}
		mt := desc.MediaType
		if d.MediaType != "" {
			mt = d.MediaType
		}
		out = append(out, referrer{desc: d, artifactType: at, raw: body, mediaType: mt})
	}
	return out, nil
}

// cosignReferrers reads cosign's tags of subject (sha256-<hex>.sig, .att,
// .sbom) that are wanted and, when the tags were listed, present.
func cosignReferrers(ctx context.Context, repo Store, subject string, wants *rules.Referrers, known map[string]bool) ([]referrer, error) {
	var out []referrer
	for _, c := range cosignSuffixes {
		if !wants.Wants(c.artifactType) {
			continue
		}
		tag := fallbackTag(subject) + c.suffix
		if known != nil && !known[tag] {
			continue
		}
		d, err := repo.HeadManifest(ctx, tag)
		if oci.IsNotFound(err) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("cosign tag %s: %w", tag, err)
		}
		body, desc, err := repo.GetManifest(ctx, d.Digest)
		if err != nil {
			return out, fmt.Errorf("cosign tag %s: %w", tag, err)
		}
		out = append(out, referrer{desc: oci.Entry{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, artifactType: c.artifactType, tag: tag, raw: body, mediaType: desc.MediaType})
	}
	return out, nil
}

// referrersAPI remembers per destination repository whether it serves the
// referrers API.
type referrersAPI struct {
	mu sync.Mutex
	m  map[string]bool
}

func (e *Engine) destinationHasAPI(ctx context.Context, dst Store, subject string) (bool, error) {
	e.refAPI.mu.Lock()
	v, ok := e.refAPI.m[dst.String()]
	e.refAPI.mu.Unlock()
	if ok {
		return v, nil
	}
	_, err := dst.Referrers(ctx, subject)
	switch {
	case errors.Is(err, client.ErrNoReferrersAPI):
		v = false
	case err == nil:
		v = true
	default:
		return false, err
	}
	e.refAPI.mu.Lock()
	if e.refAPI.m == nil {
		e.refAPI.m = map[string]bool{}
	}
	e.refAPI.m[dst.String()] = v
	e.refAPI.mu.Unlock()
	return v, nil
}

// copyReferrers copies the referrers of the unit's source image (digest
// subject) to every destination that now holds it, after it, recursively.
// Each referrer is one more result row, with Subject set.
func (e *Engine) copyReferrers(ctx context.Context, u *unit, srcRepo Store, subject string, results []JobResult) []JobResult {
	type dest struct {
		job  rules.Job
		repo Store
	}
	var dests []dest
	seenRepo := map[string]bool{}
	for _, r := range results {
		switch r.Action {
		case Copied, Skipped, WouldCopy, WouldUpdate:
		default:
			continue
		}
		if r.Digest != subject {
			e.log.Warn("referrers not copied: the platform filter rewrote the image, so they do not refer to the copy", "source", u.src.String(), "destination", r.Job.Destination.String())
			continue
		}
		if seenRepo[r.Job.Destination.Repo()] {
			continue
		}
		seenRepo[r.Job.Destination.Repo()] = true
		dst, err := e.store(ctx, r.Job.Destination.Registry, r.Job.Destination.Repository, !e.opt.DryRun)
		if err != nil {
			continue // the image's own row already failed on this
		}
		dests = append(dests, dest{job: r.Job, repo: dst})
	}
	if len(dests) == 0 {
		return results
	}
	var known map[string]bool // the source's referrer tags, when its tags were listed
	if r := u.jobs[0].Rule; r != nil {
		known = r.ReferrerTags
	}
	visited := map[string]bool{subject: true}
	followed, warned := 0, false
	var walk func(subject string, dests []dest, depth int)
	walk = func(subject string, dests []dest, depth int) {
		if ctx.Err() != nil {
			return // the image's own rows say it was interrupted
		}
		refs, err := e.referrersOf(ctx, srcRepo, subject, u.referrers, known)
		if err != nil {
			for _, d := range dests {
				results = append(results, JobResult{Job: rules.Job{Source: rules.Ref{Registry: u.src.Registry, Repository: u.src.Repository, Digest: subject}, Destination: d.job.Destination, Rule: d.job.Rule},
					Action: Failed, Err: oci.Permanent(e.explain(srcRepo, err)), Subject: subject})
			}
			return
		}
		sort.SliceStable(refs, func(i, j int) bool { return refs[i].desc.Digest < refs[j].desc.Digest })
		for _, ref := range refs {
			if ctx.Err() != nil {
				return
			}
			if followed == maxReferrersPerImage {
				if !warned {
					warned = true
					e.log.Warn("more referrers than followed for one image: the rest are left out", "source", u.src.String(), "followed", maxReferrersPerImage)
				}
				return
			}
			followed++
			var holding []dest // the destinations that now hold this referrer
			for _, d := range dests {
				r := e.copyReferrer(ctx, srcRepo, u, subject, ref, d.job, d.repo)
				results = append(results, r)
				if r.Action != Failed {
					holding = append(holding, d)
				}
			}
			if len(holding) > 0 && !visited[ref.desc.Digest] && depth < maxReferrerDepth {
				visited[ref.desc.Digest] = true
				walk(ref.desc.Digest, holding, depth+1)
			}
		}
	}
	walk(subject, dests, 1)
	return results
}

// copyReferrer copies one referrer to one destination repository: by digest
// (then listed where the destination finds referrers: see indexReferrer),
// or under its cosign tag.
func (e *Engine) copyReferrer(ctx context.Context, srcRepo Store, u *unit, subject string, ref referrer, job rules.Job, dst Store) JobResult {
	srcRef := rules.Ref{Registry: u.src.Registry, Repository: u.src.Repository, Digest: ref.desc.Digest}
	dstRef := rules.Ref{Registry: job.Destination.Registry, Repository: job.Destination.Repository, Digest: ref.desc.Digest}
	putRef := ref.desc.Digest
	if ref.tag != "" {
		srcRef.Tag, dstRef.Tag, putRef = ref.tag, ref.tag, ref.tag
	}
	res := JobResult{Job: rules.Job{Source: srcRef, Destination: dstRef, Rule: job.Rule}, Digest: ref.desc.Digest, SourceDigest: ref.desc.Digest, Subject: subject, ArtifactType: ref.artifactType}
	fail := func(err error) JobResult {
		// Not re-queued: the transport retried its requests already, and
		// the retry queue redoes images, not referrers.
		res.Action, res.Err = Failed, oci.Permanent(fmt.Errorf("referrer %s of %s → %s: %w", ref.desc.Digest, subject, dst, err))
		return res
	}
	t := &target{repo: dst, ref: putRef, force: e.opt.Force}
	present := false
	if !t.force {
		d, err := dst.HeadManifest(ctx, putRef)
		switch {
		case err == nil && d.Digest == ref.desc.Digest:
			// A layout lists a referrer in index.json after storing it:
			// stored but not listed, it is listed now (a copy of nothing).
			present = ref.tag != "" || !unlisted(dst, ref.desc.Digest)
		case err == nil:
			t.exists = true
		case !oci.IsNotFound(err):
			return fail(e.explain(dst, err))
		}
	}
	if !present {
		src := &source{repo: srcRepo, ref: ref.desc.Digest, desc: oci.Descriptor{MediaType: ref.mediaType, Digest: ref.desc.Digest}, raw: ref.raw, made: map[string]manifestBytes{}, skip: map[string]bool{}}
		e.copyManifest(ctx, src, ref.raw, ref.mediaType, []*target{t})
		if t.err != nil {
			return fail(e.explain(dst, t.err))
		}
		res.Bytes = t.bytes
	}
	if ref.tag == "" && !e.opt.DryRun {
		if err := e.indexReferrer(ctx, dst, subject, ref); err != nil {
			return fail(err)
		}
	}
	switch {
	case present:
		res.Action = Skipped
	case e.opt.DryRun && t.exists:
		res.Action = WouldUpdate
	case e.opt.DryRun:
		res.Action = WouldCopy
	default:
		res.Action = Copied
	}
	return res
}

// updateFallbackIndex adds ref to the destination's sha256-<hex> tag index
// when the destination lacks the referrers API (it answers for itself when
// it has it).
func (e *Engine) updateFallbackIndex(ctx context.Context, dst Store, subject string, ref referrer) error {
	api, err := e.destinationHasAPI(ctx, dst, subject)
	if err != nil {
		return fmt.Errorf("asking %s for its referrers API: %w", dst, e.explain(dst, err))
	}
	if api {
		return nil
	}
	tag := fallbackTag(subject)
	e.refAPI.mu.Lock() // one fallback index update at a time (read, modify, write)
	defer e.refAPI.mu.Unlock()
	idx := referrerIndex{SchemaVersion: 2, MediaType: oci.MediaOCIIndex}
	raw, _, err := dst.GetManifest(ctx, tag)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &idx); err != nil {
			return oci.Permanent(fmt.Errorf("%s:%s is not a referrers index: %w", dst, tag, err))
		}
	case !oci.IsNotFound(err):
		return e.explain(dst, err)
	}
	for _, m := range idx.Manifests {
		var d oci.Entry
		if json.Unmarshal(m, &d) == nil && d.Digest == ref.desc.Digest {
			return nil // listed already
		}
	}
	idx.Manifests = append(idx.Manifests, fallbackEntry(ref))
	if idx.SchemaVersion == 0 {
		idx.SchemaVersion = 2
	}
	if idx.MediaType == "" {
		idx.MediaType = oci.MediaOCIIndex
	}
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := dst.PutManifest(ctx, tag, oci.MediaOCIIndex, out); err != nil {
		return fmt.Errorf("writing the referrers tag %s:%s: %w", dst, tag, e.explain(dst, err))
	}
	return nil
}

// withReferrers adds the referrer rows of a unit whose image is now at (or,
// planned, would reach) its destinations.
func (e *Engine) withReferrers(ctx context.Context, u *unit, out []JobResult) []JobResult {
	subject := ""
	for _, r := range out {
		// An immutable tag skipped without requests keeps its referrers as
		// they were copied: asking for new ones would cost the requests
		// immutable saves.
		if r.Subject == "" && r.SourceDigest != "" && r.Action != Failed && r.Action != Filtered && !r.Immutable {
			subject = r.SourceDigest
			break
		}
	}
	if subject == "" {
		return out
	}
	repo, err := e.store(ctx, u.src.Registry, u.src.Repository, false)
	if err != nil {
		return out
	}
	return e.copyReferrers(ctx, u, repo, subject, out)
}

// fallbackEntry is a referrer's descriptor for a fallback index, built from
// what was checked (the digest its bytes hash to, their size, the media
// and artifact types and annotations the manifest itself holds), never
// the entry the source listed: that one may carry a duplicate digest key,
// a wrong size, other fields or a name annotation.
func fallbackEntry(ref referrer) json.RawMessage {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(ref.raw, &m)
	delete(m.Annotations, "org.opencontainers.image.ref.name")
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
	entry, _ := json.Marshal(struct {
		MediaType    types.MediaType   `json:"mediaType"`
		Digest       string            `json:"digest"`
		Size         int               `json:"size"`
		ArtifactType string            `json:"artifactType,omitempty"`
		Annotations  map[string]string `json:"annotations,omitempty"`
	}{ref.mediaType, ref.desc.Digest, len(ref.raw), ref.artifactType, m.Annotations})
	return entry
}
