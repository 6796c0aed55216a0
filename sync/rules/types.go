// Package rules turns image-syncer-compatible rule files into rules and
// expands rules into copy jobs. It is pure: no network, no engine state.
package rules

import (
	"regexp"
	"time"

	"github.com/imagesync/imagesync/registry/dockerhub"
)

// DockerHub is the canonical registry name for Docker Hub references.
const DockerHub = dockerhub.Registry

// Ref is one concrete image reference: a repository plus a tag or a digest
// (exactly one of them is set on a job's source; a destination may carry
// neither, meaning "push by digest, untagged").
type Ref struct {
	Registry   string // "docker.io", "quay.io", "127.0.0.1:5000"
	Repository string // path below the registry: "library/nginx"
	Tag        string
	Digest     string // "sha256:…"
}

// Repo returns "registry/repository", or for an image layout "oci:DIR:name"
// ("oci:DIR" when the name is a bare tag).
func (r Ref) Repo() string {
	if IsLayout(r.Registry) {
		if r.Repository == "" {
			return r.Registry
		}
		return r.Registry + ":" + r.Repository
	}
	return r.Registry + "/" + r.Repository
}

// String returns "registry/repository:tag", "registry/repository@digest",
// or both forms joined ("…:tag@digest") when both are set.
func (r Ref) String() string {
	s := r.Repo()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// SelectorKind says how a rule's source picks its tags.
type SelectorKind int

const (
	AllTags   SelectorKind = iota // reg/ns/repo: every tag (needs a tag listing)
	TagList                       // reg/ns/repo:t or :t1,t2,t3
	TagRegex                      // reg/ns/repo:/REGEX/ (needs a tag listing)
	DigestRef                     // reg/ns/repo@sha256:…
	AllImages                     // oci:DIR, oci-archive:FILE: every image named in the layout (needs its names)
)

// Source is the key of a rule.
type Source struct {
	Registry   string
	Repository string
	Kind       SelectorKind
	Tags       []string       // TagList
	Regex      *regexp.Regexp // TagRegex
	Digest     string         // DigestRef
	// Repos, when not nil, makes the source a repository pattern
	// (reg/team/*, reg/**): Repository is then the pattern's prefix, and
	// the engine turns the rule into one rule per repository it selects.
	Repos *RepoSelector
}

// Destination is one value of a rule.
type Destination struct {
	Raw        string // as written in the file, before $VAR expansion
	Registry   string
	Repository string
	Tags       []string // rename: one tag, or a positional list
	Digest     string   // pin: only valid when it equals the source digest
	Line       int      // line of the destination in the file, 0 when unknown
}

// Rule is one key of an images file with its destinations.
type Rule struct {
	File         string // path of the file the rule came from
	Key          string // the key exactly as written
	Line         int    // line of the key, 0 when unknown
	Source       Source
	Destinations []Destination

	// Set by native config files and the one-off flags (zero in
	// image-syncer files).

	// Tags filters the listed tags (AllTags and TagRegex sources); nil keeps all.
	Tags *TagFilter
	// Platforms, when not nil, replaces the run's platform filter for this
	// rule: "os/arch[/variant]" each; empty means every platform.
	Platforms []string
	// PlatformMode is "" or "rewrite" (a filtered index is rewritten with
	// the kept children) or "keep-index" (only the kept children are copied;
	// the original index bytes are pushed).
	PlatformMode string
	// Referrers, when not nil, copies the referrers (signatures, SBOMs,
	// attestations) of every image the rule copies, after it.
	Referrers *Referrers
	// Immutable are the patterns of tags that never move once pushed: a
	// job whose source tag matches one, and that the ledger saw copied, is
	// skipped without any request (see IsImmutable).
	Immutable []*regexp.Regexp
	// MinAge holds back a source tag whose digest was first seen less than
	// this long ago (0: copied at once); a tag that moves starts again.
	MinAge time.Duration
	// Prune deletes, in the destination repositories, the tags imagesync
	// wrote from this source that the rule no longer selects; PruneForce
	// lifts the bound on how many of a repository's tags one run deletes.
	Prune, PruneForce bool
	pruneSet          bool // Prune was set by the entry itself (prune: false beats defaults)
	// Steps is what the tag filter removed in the last Expand, in order
	// (for plan). Set by Expand.
	Steps []FilterStep
	// ReferrerTags holds the referrer tags (sha256-<hex>[.sig|.att|.sbom])
	// of the source repository's listing, when the rule copies referrers
	// and lists tags (nil otherwise: unknown). Set by Expand.
	ReferrerTags map[string]bool
}

// Referrers says which referrers a rule copies.
type Referrers struct {
	// ArtifactTypes keeps only referrers of these artifact types; empty keeps all.
	ArtifactTypes []string
}

// Wants reports whether a referrer of that artifact type is copied.
func (r *Referrers) Wants(artifactType string) bool {
	if r == nil {
		return false
	}
	if len(r.ArtifactTypes) == 0 {
		return true
	}
	for _, t := range r.ArtifactTypes {
		if t == artifactType {
			return true
		}
	}
	return false
}

// Job is one source image to one destination reference.
type Job struct {
	Source      Ref // Tag or Digest set
	Destination Ref // Tag set, or Digest set, or neither (push by digest)
	Rule        *Rule
}

// SetPrune sets the rule's own prune setting (a config entry's prune:),
// which its file's defaults do not replace: prune: false beats defaults.
func (r *Rule) SetPrune(v bool) { r.Prune, r.pruneSet = v, true }
