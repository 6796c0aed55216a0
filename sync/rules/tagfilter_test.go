package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// filterTags is the listing the tag filter tests use: semver releases,
// pre-releases, a "v" prefix, a suffixed variant and tags that are no version.
var filterTags = []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "1.27.3-alpine",
	"v1.28.0", "2.0.0-beta.1", "2.0.0", "latest", "edge", "stable-20240101"}

func TestTagFilter(t *testing.T) {
	res := func(exprs ...string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for _, e := range exprs {
			re, err := CompileTagPattern(e)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, re)
		}
		return out
	}
	semv := func(s string) *TagFilter {
		c, err := ParseSemverConstraint(s)
		if err != nil {
			t.Fatal(err)
		}
		return &TagFilter{Semver: c, SemverText: s}
	}
	combo := semv(">=1.25.0 <2")
	combo.Include, combo.Exclude, combo.Latest = res(`^1\.2[0-9]`, `^v1\.`), res(`-alpine$`), 3
	for _, tc := range []struct {
		name  string
		f     *TagFilter
		want  []string
		steps []string // removed per step: "filter:n"
	}{
		{"none", nil, filterTags, nil},
		{"include", &TagFilter{Include: res(`^1\.2[0-9]`)}, []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "1.27.3-alpine"}, []string{"include:6"}},
		{"exclude", &TagFilter{Exclude: res(`-alpine$`, `^(latest|edge)$`)}, []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "v1.28.0", "2.0.0-beta.1", "2.0.0", "stable-20240101"}, []string{"exclude:3"}},
		{"semver", semv(">=1.25.0 <2"), []string{"1.25.0", "1.25.1", "1.26.0", "1.27.3", "v1.28.0"}, []string{"semver:8"}},
		{"semver with pre-releases", semv(">=2.0.0-0"), []string{"2.0.0-beta.1", "2.0.0"}, []string{"semver:11"}},
		{"latest", &TagFilter{Latest: 2}, []string{"2.0.0-beta.1", "2.0.0"}, []string{"latest:11"}},
		{"all four", combo, []string{"1.26.0", "1.27.3", "v1.28.0"}, []string{"include:5", "exclude:1", "semver:2", "latest:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, steps := tc.f.Apply(filterTags)
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			var gs []string
			for _, s := range steps {
				gs = append(gs, fmt.Sprintf("%s:%d", s.Filter, len(s.Removed)))
			}
			if !slices.Equal(gs, tc.steps) {
				t.Errorf("steps %v, want %v", gs, tc.steps)
			}
		})
	}
}

func TestReferrerTags(t *testing.T) {
	h := "sha256-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// The grammar, as the regular expression it was first written as.
	grammar := regexp.MustCompile(`^sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?$`)
	for tag, want := range map[string]bool{
		h: true, h + ".sig": true, h + ".att": true, h + ".sbom": true,
		h + ".x": false, h + ".sig.sig": false, h + "0": false, h + "0.sig": false, h[:70] + ".sig": false,
		strings.ToUpper(h): false, "sha256-" + strings.ToUpper(h[7:]): false, "sha512-" + h[7:]: false,
		"sha256-abc": false, "sha256-": false, "1.0": false, "": false, h + ".": false, h + "sig": false,
	} {
		if IsReferrerTag(tag) != want || grammar.MatchString(tag) != want {
			t.Errorf("IsReferrerTag(%q) = %v, the grammar says %v; want %v", tag, IsReferrerTag(tag), grammar.MatchString(tag), want)
		}
	}
	r := Rule{Source: Source{Registry: "r.io", Repository: "a/b", Kind: AllTags}, Destinations: []Destination{{Registry: "d.io", Repository: "a/b"}}, Referrers: &Referrers{}}
	jobs, err := r.Expand([]string{"1.0", h, h + ".sig"})
	if err != nil || len(jobs) != 1 || jobs[0].Source.Tag != "1.0" {
		t.Fatalf("jobs %v, %v", jobs, err)
	}
	if len(r.Steps) != 1 || r.Steps[0].Filter != "referrers" || len(r.Steps[0].Removed) != 2 {
		t.Errorf("steps %+v", r.Steps)
	}
}
