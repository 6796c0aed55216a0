package main

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// filterTags: 13 tags — releases, pre-releases, a "v" prefix, a suffixed
// variant and tags that are no version.
var filterTags = []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "1.27.3-alpine",
	"v1.28.0", "2.0.0-beta.1", "2.0.0", "latest", "edge", "stable-20240101"}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestTagFilters(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		_, raw := src.PushRandomImage(t, "lib/app", filterTags[0], registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 256, true, 7)
		for _, tag := range filterTags[1:] {
			src.PushManifest(t, "lib/app", tag, registrytest.MediaTypeOCIManifest, raw)
		}
		if got := src.Tags(t, "lib/app"); len(got) != len(filterTags) {
			t.Fatalf("seeded %d tags, want %d", len(got), len(filterTags))
		}
		from, to := src.Host+"/lib/app", dst.Host+"/mirror/app"

		// Each filter alone, as one-off flags.
		for _, tc := range []struct {
			flags []string
			want  []string
		}{
			{[]string{"--include", `^1\.2[0-9]`}, []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "1.27.3-alpine"}},
			{[]string{"--include", `^1\.2[4-5]\.[0-9]{1,3}$`}, []string{"1.24.0", "1.25.0", "1.25.1"}}, // a comma is part of the expression
			{[]string{"--exclude=-alpine$", "--exclude", `^(latest|edge)$`}, []string{"1.24.0", "1.25.0", "1.25.1", "1.26.0-rc.1", "1.26.0", "1.27.3", "v1.28.0", "2.0.0-beta.1", "2.0.0", "stable-20240101"}},
			{[]string{"--semver", ">=1.25.0 <2"}, []string{"1.25.0", "1.25.1", "1.26.0", "1.27.3", "v1.28.0"}},
			{[]string{"--latest", "2"}, []string{"2.0.0-beta.1", "2.0.0"}},
			{[]string{"--include", `^1\.2[0-9]`, "--include", `^v1\.`, "--exclude=-alpine$", "--semver", ">=1.25.0 <2", "--latest", "3"}, []string{"1.26.0", "1.27.3", "v1.28.0"}},
		} {
			p := filterPlanJSON(t, append([]string{"--no-ledger", from, to}, tc.flags...)...)
			if got := p.sourceTags(); !slices.Equal(got, sorted(tc.want...)) {
				t.Errorf("%v selects %v, want %v", tc.flags, got, sorted(tc.want...))
			}
		}

		// The combination in a config file: plan names what each step removed,
		// and sync writes exactly the selected tags.
		dir := t.TempDir()
		cfg := writeFile(t, dir, "imagesync.yaml", fmt.Sprintf(`sync:
  - from: %s
    to: [%s]
    tags:
      include: ['^1\.2[0-9]', '^v1\.']
      exclude: ['-alpine$']
      semver: '>=1.25.0 <2'
      latest: 3
`, from, to))
		p := filterPlanJSON(t, "-f", cfg)
		if len(p.Filters) != 1 {
			t.Fatalf("plan filters: %+v", p.Filters)
		}
		steps := map[string][]string{}
		for _, s := range p.Filters[0].Steps {
			steps[s.Filter] = sorted(s.Removed...)
		}
		wantSteps := map[string][]string{
			"include": sorted("2.0.0-beta.1", "2.0.0", "latest", "edge", "stable-20240101"),
			"exclude": {"1.27.3-alpine"},
			"semver":  sorted("1.24.0", "1.26.0-rc.1"),
			"latest":  sorted("1.25.0", "1.25.1"),
		}
		for f, want := range wantSteps {
			if !slices.Equal(steps[f], want) {
				t.Errorf("plan: %s removed %v, want %v", f, steps[f], want)
			}
		}
		if r := runCLI(t, nil, "plan", "-f", cfg); !strings.Contains(r.stdout, "tag filters of") || !regexp.MustCompile(`(?m)^\s+latest\s+removed 1\.25\.0, 1\.25\.1$`).MatchString(r.stdout) {
			t.Errorf("the plan table does not say what each filter removed")
		}
		if r := runCLI(t, nil, "sync", "-f", cfg); r.code != 0 {
			t.Fatalf("sync exit %d", r.code)
		}
		if got := sorted(dst.Tags(t, "mirror/app")...); !slices.Equal(got, sorted("1.26.0", "1.27.3", "v1.28.0")) {
			t.Errorf("destination tags %v", got)
		}
	})
}
