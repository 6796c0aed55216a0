package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagesync/imagesync/oci"
)

// TagFilter selects among the tags a rule's source lists (or names). The
// steps run in this order, each on what the previous one kept: Include (a
// tag is kept when one of the expressions matches in it), Exclude (a tag is
// dropped when one matches in it), Semver (a tag is kept when it
// parses as a semantic version — a leading "v" and a missing minor or patch
// are accepted — inside the constraint), Latest (the N highest by semver
// order; tags that are not versions are dropped).
type TagFilter struct {
	Include []*regexp.Regexp // searched in the tag: anchor with ^ and $
	Exclude []*regexp.Regexp
	Semver  *semver.Constraints
	// SemverText is the constraint as written (for messages and the ledger).
	SemverText string
	Latest     int // 0: no limit
}

// FilterStep says which tags one step of a filter removed.
type FilterStep struct {
	Filter  string   `json:"filter"` // include, exclude, semver, latest, referrers
	Removed []string `json:"removed"`
}

// Empty reports whether the filter keeps every tag.
func (f *TagFilter) Empty() bool {
	return f == nil || (len(f.Include) == 0 && len(f.Exclude) == 0 && f.Semver == nil && f.Latest == 0)
}

// CompileTagPattern compiles one include/exclude expression. It is searched
// for in the tag, like image-syncer's /REGEX/ keys: anchor it with ^ and $
// (`^1\.2[0-9]` keeps 1.25.0 but not v1.25.0; `-alpine$` drops 1.25-alpine).
func CompileTagPattern(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, fmt.Errorf("empty tag expression")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("bad tag expression %q: %v", expr, err)
	}
	return re, nil
}

// ParseSemverConstraint parses a constraint such as ">=1.25.0 <2" or "~1.2 || ^2".
func ParseSemverConstraint(s string) (*semver.Constraints, error) {
	c, err := semver.NewConstraint(s)
	if err != nil {
		return nil, fmt.Errorf("bad semver constraint %q: %v", s, err)
	}
	return c, nil
}

// Apply runs the filter over tags (in their order) and returns the kept tags
// and, per step that ran, the tags it removed.
func (f *TagFilter) Apply(tags []string) (kept []string, steps []FilterStep) {
	kept = tags
	if f.Empty() {
		return kept, nil
	}
	step := func(name string, keep func(string) bool) {
		var removed []string
		kept, removed = partition(kept, keep)
		steps = append(steps, FilterStep{Filter: name, Removed: nonNil(removed)})
	}
	if len(f.Include) > 0 {
		step("include", func(t string) bool { return matchAny(f.Include, t) })
	}
	if len(f.Exclude) > 0 {
		step("exclude", func(t string) bool { return !matchAny(f.Exclude, t) })
	}
	if f.Semver != nil {
		step("semver", func(t string) bool {
			v, err := semver.NewVersion(t)
			return err == nil && f.Semver.Check(v)
		})
	}
	if f.Latest > 0 {
		type tv struct {
			tag string
			v   *semver.Version
		}
		var vs []tv
		for _, t := range kept {
			if v, err := semver.NewVersion(t); err == nil {
				vs = append(vs, tv{t, v})
			}
		}
		// Highest first; equal versions (1.2 and v1.2.0) by tag text, for a stable choice.
		sort.SliceStable(vs, func(i, j int) bool {
			if c := vs[i].v.Compare(vs[j].v); c != 0 {
				return c > 0
			}
			return vs[i].tag < vs[j].tag
		})
		top := map[string]bool{}
		for i := 0; i < len(vs) && i < f.Latest; i++ {
			top[vs[i].tag] = true
		}
		step("latest", func(t string) bool { return top[t] })
	}
	return nonNil(kept), steps
}

// String describes the filter for messages and the ledger: it changes
// whenever the filter does.
func (f *TagFilter) String() string {
	if f.Empty() {
		return ""
	}
	var parts []string
	for _, r := range f.Include {
		parts = append(parts, "include="+r.String())
	}
	for _, r := range f.Exclude {
		parts = append(parts, "exclude="+r.String())
	}
	if f.Semver != nil {
		parts = append(parts, "semver="+f.SemverText)
	}
	if f.Latest > 0 {
		parts = append(parts, fmt.Sprintf("latest=%d", f.Latest))
	}
	return strings.Join(parts, " ")
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, r := range res {
		if r.MatchString(s) {
			return true
		}
	}
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// IsReferrerTag reports whether tag is a referrers fallback tag or a cosign
// tag: the tags that stand for referrers rather than images, the OCI
// referrers tag schema (sha256-<hex>) and cosign's signature, attestation
// and SBOM tags (sha256-<hex>.sig, .att, .sbom).
func IsReferrerTag(tag string) bool {
	rest, ok := strings.CutPrefix(tag, "sha256-")
	if !ok || len(rest) < 64 || !oci.ValidDigest("sha256:"+rest[:64]) {
		return false
	}
	switch rest[64:] {
	case "", ".sig", ".att", ".sbom":
		return true
	}
	return false
}

// partition splits tags into those keep accepts and the others, in order.
func partition(tags []string, keep func(string) bool) (kept, removed []string) {
	for _, t := range tags {
		if keep(t) {
			kept = append(kept, t)
		} else {
			removed = append(removed, t)
		}
	}
	return kept, removed
}
