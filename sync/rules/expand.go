package rules

import (
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// NeedsTagList reports whether Expand needs the repository's tag listing
// (AllTags and TagRegex sources), or for AllImages the names in the layout.
func (r *Rule) NeedsTagList() bool {
	return r.Source.Kind == AllTags || r.Source.Kind == TagRegex || r.Source.Kind == AllImages
}

// Expand returns the jobs of the rule: for each source item (tag or digest),
// for each destination. listed is the repository's tag list, used only when
// NeedsTagList (pass nil otherwise); AllTags keeps every listed tag and
// TagRegex the tags its regexp matches (unanchored), in listing order,
// deduplicated. A single-tag rename on AllTags/TagRegex is an error unless
// exactly one tag remains. For AllImages, listed holds the names of the
// layout's index.json. Errors name the rule's file, line and key.
func (r *Rule) Expand(listed []string) ([]Job, error) {
	items, err := r.sourceItems(listed)
	if err != nil {
		return nil, err
	}
	if err := r.checkDestinations(items); err != nil {
		return nil, err
	}
	return r.jobs(items)
}

// sourceItems lists the source references the rule copies: the listed tags
// it selects (after its filters), its tag list, its digest, or the images a
// layout's index.json names.
func (r *Rule) sourceItems(listed []string) ([]Ref, error) {
	src := r.Source
	var items []Ref
	base := Ref{Registry: src.Registry, Repository: src.Repository}
	r.ReferrerTags = nil
	switch src.Kind {
	case AllTags, TagRegex:
		if r.Referrers != nil {
			r.ReferrerTags = map[string]bool{}
			for _, t := range listed {
				if IsReferrerTag(t) {
					r.ReferrerTags[t] = true
				}
			}
		}
		seen := map[string]bool{}
		for _, t := range listed {
			if t == "" || seen[t] {
				continue
			}
			if src.Kind == TagRegex && (src.Regex == nil || src.Regex.FindStringIndex(t) == nil) {
				continue
			}
			seen[t] = true
			ref := base
			ref.Tag = t
			items = append(items, ref)
		}
		items = r.filterItems(items)
	case TagList:
		for _, t := range src.Tags {
			ref := base
			ref.Tag = t
			items = append(items, ref)
		}
	case DigestRef:
		ref := base
		ref.Digest = src.Digest
		items = append(items, ref)
	case AllImages:
		seen := map[string]bool{}
		for _, name := range listed {
			n, err := ParseLayoutName(name)
			if err != nil {
				return nil, ErrorList{&cfgfile.Error{File: r.File, Line: r.Line, Key: r.Key, Msg: fmt.Sprintf("%s: index.json names an image %q: %v", src.Registry, name, err)}}
			}
			ref := Ref{Registry: src.Registry, Tag: n.Tag, Digest: n.Digest}
			if n.Registry != "" {
				ref.Repository = n.Repo()
			}
			if seen[ref.String()] {
				continue
			}
			seen[ref.String()] = true
			items = append(items, ref)
		}
		items = r.filterLayoutItems(items)
	}
	return items, nil
}

// checkDestinations checks each destination against the source and the
// number of items (a tag rename needs one tag per item).
func (r *Rule) checkDestinations(items []Ref) error {
	src := r.Source
	var errs ErrorList
	for _, d := range r.Destinations {
		line := d.Line
		if line == 0 {
			line = r.Line
		}
		err := checkDestination(src, d)
		if err == nil && len(d.Tags) > 0 && len(d.Tags) != len(items) {
			err = fmt.Errorf("destination %q renames to %d tag(s) (%s) but the source %s", d.name(),
				len(d.Tags), strings.Join(d.Tags, ","), describeItems(src, items))
		}
		if err != nil {
			errs = append(errs, &cfgfile.Error{File: r.File, Line: line, Key: r.Key, Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// jobs pairs each item with each destination, once.
func (r *Rule) jobs(items []Ref) ([]Job, error) {
	src := r.Source
	jobs := make([]Job, 0, len(items)*len(r.Destinations))
	seen := map[[2]string]bool{}
	for i, s := range items {
		for _, d := range r.Destinations {
			dst := Ref{Registry: d.Registry, Repository: d.Repository}
			switch {
			case IsLayout(src.Registry) || IsLayout(d.Registry):
				dst = layoutItemDestination(d, s)
				if dst.Repository == "" && !IsLayout(dst.Registry) {
					return nil, ErrorList{&cfgfile.Error{File: r.File, Line: d.Line, Key: r.Key,
						Msg: fmt.Sprintf("%s names an image by the bare tag %q: give the destination %q a repository to push it to", src.Registry, s.Tag, d.name())}}
				}
			case d.Digest != "":
				dst.Digest = d.Digest
			case len(d.Tags) == 1:
				dst.Tag = d.Tags[0]
			case len(d.Tags) > 1:
				dst.Tag = d.Tags[i]
			default:
				dst.Tag = s.Tag // empty for a digest source: push by digest
			}
			k := [2]string{s.String(), dst.String()}
			if seen[k] {
				continue
			}
			seen[k] = true
			jobs = append(jobs, Job{Source: s, Destination: dst, Rule: r})
		}
	}
	return jobs, nil
}

// filterItems drops referrer tags (when the rule copies referrers: they
// travel with their subject) and applies the tag filter, recording in
// r.Steps what each step removed.
func (r *Rule) filterItems(items []Ref) []Ref {
	r.Steps = nil
	if r.Referrers == nil && r.Tags.Empty() {
		return items
	}
	tags := make([]string, len(items))
	for i, it := range items {
		tags[i] = it.Tag
	}
	if r.Referrers != nil {
		var removed []string
		tags, removed = partition(tags, func(t string) bool { return !IsReferrerTag(t) })
		if len(removed) > 0 {
			r.Steps = append(r.Steps, FilterStep{Filter: "referrers", Removed: removed})
		}
	}
	kept, steps := r.Tags.Apply(tags)
	r.Steps = append(r.Steps, steps...)
	out := make([]Ref, 0, len(kept))
	for _, t := range kept {
		ref := Ref{Registry: r.Source.Registry, Repository: r.Source.Repository, Tag: t}
		out = append(out, ref)
	}
	return out
}

func describeItems(src Source, items []Ref) string {
	verb := "has"
	switch src.Kind {
	case AllTags:
		verb = "lists"
	case TagRegex:
		verb = "matches"
	case AllImages:
		verb = "names"
	}
	if len(items) == 0 {
		return verb + " no tags"
	}
	const show = 10
	names := make([]string, 0, show)
	for i, it := range items {
		if i == show {
			names = append(names, "…")
			break
		}
		if it.Tag != "" {
			names = append(names, it.Tag)
		} else {
			names = append(names, it.Digest)
		}
	}
	return fmt.Sprintf("%s %d (%s)", verb, len(items), strings.Join(names, ", "))
}

// CheckJobs finds destination conflicts across all jobs: one tagged
// destination reference written from two different source references is an
// error naming both rules. Identical (source, destination) pairs are
// deduplicated, keeping the first. Destinations without a tag (pushed by
// digest) cannot conflict. It returns the deduplicated jobs in order, or an
// ErrorList of every conflict. With aside (--skip-invalid-rules), both rules
// of each conflict are set aside instead, and the other jobs returned.
func CheckJobs(jobs []Job, aside *SetAside) ([]Job, error) {
	if aside != nil {
		out, skipped := checkJobsSkipping(jobs)
		aside.Add(skipped...)
		return out, nil
	}
	out := make([]Job, 0, len(jobs))
	seen := map[[2]string]bool{}
	owner := map[string]int{} // destination -> index in out of its first writer
	var errs ErrorList
	for _, j := range jobs {
		s, d := j.Source.String(), j.Destination.String()
		k := [2]string{s, d}
		if seen[k] {
			continue
		}
		seen[k] = true
		if j.Destination.Tag != "" {
			if i, ok := owner[d]; ok {
				errs = append(errs, conflictError(out[i], j))
				continue
			}
			owner[d] = len(out)
		}
		out = append(out, j)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// conflictError says that j writes the destination first already writes.
func conflictError(first, j Job) error {
	return ruleError(j.Rule, fmt.Sprintf("destination %q is written from both %q (%s) and %q", j.Destination.String(), first.Source.String(), ruleWhere(first.Rule), j.Source.String()))
}

// ruleError is an error about a job's rule (none for a hand-built job).
func ruleError(r *Rule, msg string) *cfgfile.Error {
	if r == nil {
		return &cfgfile.Error{Msg: msg}
	}
	return &cfgfile.Error{File: r.File, Line: r.Line, Key: r.Key, Msg: msg}
}

// ruleWhere is "FILE:LINE key "KEY"" for messages.
func ruleWhere(r *Rule) string {
	if r == nil {
		return "unknown rule"
	}
	where := r.File
	if r.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, r.Line)
	}
	if where == "" {
		return fmt.Sprintf("key %q", r.Key)
	}
	return fmt.Sprintf("%s key %q", where, r.Key)
}
