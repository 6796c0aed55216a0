package layout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// Referrers (signatures, SBOMs, attestations: manifests whose subject field
// names another manifest) are listed in index.json as entries without a
// name, the way oras-go's OCI store lists every manifest it stores untagged,
// so that tools reading the layout (`oras discover --oci-layout`) find them
// from their subject. A layout answers for its referrers like a registry
// with the referrers API: the manifests index.json lists whose subject is a
// digest, whatever their repository.

// manifestHead is what a manifest says about itself as a referrer.
type manifestHead struct {
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
	Annotations map[string]string `json:"annotations"`
}

// referrerDescriptor describes the manifest raw (digest, mediaType when
// known) as the referrers API does: its artifactType (else its config's
// media type) and annotations (without a name, which would make the entry a
// named image). subject is "" when the manifest refers to nothing.
func referrerDescriptor(digest string, raw []byte, mediaType string) (d descriptor, subject string) {
	var m manifestHead
	if err := json.Unmarshal(raw, &m); err != nil || m.Subject == nil || m.Subject.Digest == "" {
		return descriptor{}, ""
	}
	if mediaType == "" {
		mediaType = m.MediaType
	}
	if mediaType == "" {
		mediaType = sniffMediaType(raw)
	}
	d = descriptor{MediaType: mediaType, Digest: digest, Size: int64(len(raw)), ArtifactType: m.ArtifactType}
	if d.ArtifactType == "" && m.Config != nil {
		d.ArtifactType = m.Config.MediaType
	}
	for k, v := range m.Annotations {
		if k == AnnotationName {
			continue
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[k] = v
	}
	return d, m.Subject.Digest
}

// referrerMap reads every manifest index.json lists and returns the
// referrers among them by subject. Unreadable manifests are left out (an
// image's own HEAD reports them).
func (l *Layout) referrerMap() map[string][]descriptor {
	l.mu.Lock()
	entries := make([]descriptor, 0, len(l.index.entries))
	for _, e := range l.index.entries {
		entries = append(entries, e.desc)
	}
	l.mu.Unlock()
	out := map[string][]descriptor{}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.Digest] {
			continue
		}
		seen[e.Digest] = true
		raw, err := l.readManifest(e.Digest)
		if err != nil {
			continue
		}
		if d, subject := referrerDescriptor(e.Digest, raw, e.MediaType); subject != "" {
			out[subject] = append(out[subject], d)
		}
	}
	return out
}

// referrersOf returns the referrers index.json lists for subject.
func (l *Layout) referrersOf(subject string) []descriptor {
	l.refMu.Lock()
	defer l.refMu.Unlock()
	if l.refs == nil {
		l.refs = l.referrerMap()
	}
	return l.refs[subject]
}

// Referrers returns, as the referrers API would (an OCI index), the
// manifests the layout lists whose subject is digest; and, for a layout
// written without referrers from a registry that keeps them under the
// referrers tag schema, those of this repository's sha256-<hex> index. The
// engine fetches and checks each one.
func (r *Repo) Referrers(ctx context.Context, digest string) ([]byte, error) {
	var manifests []json.RawMessage
	seen := map[string]bool{}
	for _, d := range r.l.referrersOf(digest) {
		raw, _ := json.Marshal(d)
		manifests = append(manifests, raw)
		seen[d.Digest] = true
	}
	if d, ok := r.l.lookup(r.fullName(strings.Replace(digest, ":", "-", 1))); ok {
		raw, err := r.l.readManifest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: referrers tag of %s: %w", r, digest, err)
		}
		var idx struct {
			Manifests []json.RawMessage `json:"manifests"`
		}
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, oci.Permanent(fmt.Errorf("%s: referrers tag of %s is not an index: %w", r, digest, err))
		}
		for _, m := range idx.Manifests {
			var d descriptor
			if json.Unmarshal(m, &d) == nil && !seen[d.Digest] {
				seen[d.Digest] = true
				manifests = append(manifests, m)
			}
		}
	}
	if manifests == nil {
		manifests = []json.RawMessage{}
	}
	return json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaOCIIndex, "manifests": manifests})
}

// Lists reports whether index.json lists digest (named or not): a referrer
// the layout holds but does not list is not found by other tools, and is
// listed again (IndexReferrer).
func (r *Repo) Lists(digest string) bool {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return r.l.index.lists(digest)
}

// IndexReferrer lists a manifest the layout stores, one with a subject, in
// index.json as an entry without a name (nothing is written when an entry
// for it is there already). The manifest is stored first (PutManifest by
// digest), so an entry never points at something missing.
func (r *Repo) IndexReferrer(ctx context.Context, digest string, mediaType types.MediaType) error {
	if r.Lists(digest) {
		return nil // before ensure: an archive nothing is added to is not rewritten
	}
	raw, err := r.l.readManifest(digest)
	if err != nil {
		return err
	}
	d, subject := referrerDescriptor(digest, raw, string(mediaType))
	if subject == "" {
		return oci.Permanent(fmt.Errorf("%s: %s has no subject: not a referrer", r, digest))
	}
	if err := r.l.ensure(); err != nil {
		return err
	}
	l := r.l
	l.refMu.Lock()
	defer l.refMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.index.lists(digest) {
		return nil
	}
	entry, _ := json.Marshal(d)
	l.index.addUnnamed(entry, d)
	doc := l.index
	if l.archive {
		l.staged.addUnnamed(entry, d)
		doc, l.written = l.staged, true
	}
	if l.refs != nil {
		l.refs[subject] = append(l.refs[subject], d)
	}
	return writeFileAtomic(l.root.Load(), IndexFile, doc.encode())
}

// UnnamedEntries sorts index.json's entries without a name: referrers (a
// subject) are expected there; any other has no name to be copied under.
// Orphans are referrers whose subject the layout does not hold (they are
// never reached from an image, and so never copied).
//
// Children of an index the layout lists are not "others": oras-go (and
// other tools) list every manifest they store untagged, an index's
// children included; those are copied with their index.
func (l *Layout) UnnamedEntries() (others []Unnamed, orphans []Orphan) {
	_, unnamed := l.Names()
	l.mu.Lock()
	descs := map[string]string{}
	for _, e := range l.index.entries {
		descs[e.desc.Digest] = e.desc.MediaType
	}
	l.mu.Unlock()
	var children map[string]bool // read only when an unnamed entry is not a referrer
	for _, u := range unnamed {
		raw, err := l.readManifest(u.Digest)
		subject := ""
		if err == nil {
			_, subject = referrerDescriptor(u.Digest, raw, descs[u.Digest])
		}
		if subject == "" && children == nil {
			children = l.indexChildren(descs)
		}
		switch {
		case subject == "" && children[u.Digest]:
			// copied as part of the index that holds it
		case subject == "":
			others = append(others, u)
		default:
			if ok, err := l.hasBlob(subject); err != nil || !ok {
				orphans = append(orphans, Orphan{Unnamed: u, Subject: subject})
			}
		}
	}
	return others, orphans
}

// Orphan is a referrer listed in index.json whose subject is not in the layout.
type Orphan struct {
	Unnamed
	Subject string
}

// indexChildren returns the digests of the manifests that the indexes
// listed in index.json (named or not) hold; an entry that cannot be read
// or parsed holds none (copying it reports why).
func (l *Layout) indexChildren(descs map[string]string) map[string]bool {
	children := map[string]bool{}
	for digest := range descs {
		raw, err := l.readManifest(digest)
		if err != nil {
			continue
		}
		var idx struct {
			Manifests []struct {
				Digest string `json:"digest"`
			} `json:"manifests"`
		}
		if json.Unmarshal(raw, &idx) != nil {
			continue
		}
		for _, m := range idx.Manifests {
			children[m.Digest] = true
		}
	}
	return children
}
