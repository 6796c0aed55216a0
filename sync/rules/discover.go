package rules

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/registry/dockerhub"
)

// RepoSelector is the set of repositories a wildcard source stands for
// (`registry.example.com/team/*`, `registry.example.com/**`, narrowed by a
// native entry's `repositories:`). The engine lists the registry's catalog
// (unless the include list names every repository literally) and turns the
// rule into one rule per selected repository (ForRepositories).
type RepoSelector struct {
	// Pattern is the source's repository pattern as written: "team/*", "**".
	Pattern string
	// Prefix is the pattern's leading components without a wildcard
	// ("team" for "team/*", "" for "**"): what a destination replaces.
	Prefix string
	// Include and Exclude are the native config's `repositories:` patterns
	// (whole repository paths, same wildcards). A repository is selected
	// when it matches Pattern, one Include (when there are any) and no
	// Exclude.
	Include, Exclude []string

	match            *regexp.Regexp
	include, exclude []*regexp.Regexp
}

// IsDiscovery reports whether the rule's source is a repository pattern.
func (r *Rule) IsDiscovery() bool { return r.Source.Repos != nil }

// globRE turns a repository pattern into a regular expression: `*` matches
// within one path component, `**` across components (any characters,
// slashes too). Everything else must be a valid repository character.
func globRE(pat string) (*regexp.Regexp, error) {
	if pat == "" {
		return nil, errors.New("empty repository pattern")
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '*' && i+1 < len(pat) && pat[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '/':
			b.WriteByte(c)
		case c == '.' || c == '_' || c == '-':
			b.WriteString(regexp.QuoteMeta(string(c)))
		default:
			return nil, fmt.Errorf("repository pattern %q: %q is not allowed (lower-case letters, digits, . _ - / and the wildcards * and **)", pat, string(c))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// hasWildcard reports whether a repository name is a pattern.
func hasWildcard(s string) bool { return strings.Contains(s, "*") }

// newRepoSelector parses the repository part of a wildcard source. The
// components before the first wildcard form the prefix; they must be valid
// repository components.
func newRepoSelector(pat string) (*RepoSelector, error) {
	comps := strings.Split(pat, "/")
	var prefix []string
	for _, c := range comps {
		if hasWildcard(c) {
			break
		}
		prefix = append(prefix, c)
	}
	if len(prefix) > 0 {
		if err := checkRepository(strings.Join(prefix, "/")); err != nil {
			return nil, err
		}
	}
	re, err := globRE(pat)
	if err != nil {
		return nil, err
	}
	return &RepoSelector{Pattern: pat, Prefix: strings.Join(prefix, "/"), match: re}, nil
}

// SetRepositories narrows the selector to include (when not empty) minus
// exclude. Every include must be able to match below the source pattern.
func (s *RepoSelector) SetRepositories(include, exclude []string) error {
	s.Include, s.Exclude, s.include, s.exclude = include, exclude, nil, nil
	for _, p := range include {
		re, err := globRE(p)
		if err != nil {
			return err
		}
		if !hasWildcard(p) {
			if err := checkRepository(p); err != nil {
				return err
			}
			if !s.match.MatchString(p) {
				return fmt.Errorf("repository %q is not below the source pattern %q", p, s.Pattern)
			}
		}
		s.include = append(s.include, re)
	}
	for _, p := range exclude {
		re, err := globRE(p)
		if err != nil {
			return err
		}
		s.exclude = append(s.exclude, re)
	}
	return nil
}

// Selects reports whether the repository name is one the selector stands for.
func (s *RepoSelector) Selects(name string) bool {
	if !s.match.MatchString(name) {
		return false
	}
	if len(s.include) > 0 && !anyMatch(s.include, name) {
		return false
	}
	return !anyMatch(s.exclude, name)
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// Literal returns the repositories when the include list names every one
// of them without a wildcard: then no catalog is needed (a registry that
// refuses the catalog, like Docker Hub, can still be mirrored this way).
func (s *RepoSelector) Literal() ([]string, bool) {
	if len(s.Include) == 0 {
		return nil, false
	}
	var out []string
	for _, p := range s.Include {
		if hasWildcard(p) {
			return nil, false
		}
		if s.Selects(p) {
			out = append(out, p)
		}
	}
	return out, true
}

// String is the source pattern as "registry/pattern".
func (s *RepoSelector) String() string { return s.Pattern }

// ForRepositories turns a discovery rule into one rule per selected
// repository of names (in order, duplicates dropped): the source names the
// repository, and every destination keeps the repository's path below the
// source prefix under its own repository (`reg/team/*` → `dst/mirror`
// copies `team/app/web` to `dst/mirror/app/web`). Names the selector does
// not select are left out; a destination name that would be too long is
// an error naming the rule.
func (r *Rule) ForRepositories(names []string) ([]Rule, error) {
	sel := r.Source.Repos
	var out []Rule
	var errs ErrorList
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] || !sel.Selects(name) {
			continue
		}
		seen[name] = true
		rest := name
		if sel.Prefix != "" {
			rest = strings.TrimPrefix(name, sel.Prefix+"/")
		}
		c := *r
		c.Source.Repos = nil
		c.Source.Repository = name
		c.Steps, c.ReferrerTags = nil, nil
		c.Destinations = make([]Destination, len(r.Destinations))
		bad := false
		for i, d := range r.Destinations {
			d.Repository = path.Join(d.Repository, rest)
			if _, _, err := normalise(d.Registry, d.Repository); err != nil {
				errs = append(errs, &cfgfile.Error{File: r.File, Line: d.Line, Key: r.Key, Msg: fmt.Sprintf("repository %s: destination %s/%s: %v", name, d.Registry, d.Repository, err)})
				bad = true
			}
			c.Destinations[i] = d
		}
		if !bad {
			out = append(out, c)
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// checkDiscoveryDestination refuses what a wildcard source cannot honour:
// a tag rename, a digest, an image layout.
func checkDiscoveryDestination(src Source, d Destination) error {
	if src.Repos == nil {
		return nil
	}
	switch {
	case IsLayout(d.Registry):
		return fmt.Errorf("destination %q: a source with a repository wildcard copies to a registry, not to an image layout", d.name())
	case len(d.Tags) > 0 || d.Digest != "":
		return fmt.Errorf("destination %q: a source with a repository wildcard keeps each repository's tags; give a registry or a repository prefix without tag or digest", d.name())
	}
	return nil
}

// parseSourceName is parseName for a source: a repository path with a
// wildcard (`reg/team/*`, `reg/**`) gives a RepoSelector. A wildcard
// source must name its registry.
func parseSourceName(name string) (reg, repo string, sel *RepoSelector, err error) {
	if !hasWildcard(name) {
		reg, repo, err = parseName(name)
		return reg, repo, nil, err
	}
	first, rest, found := strings.Cut(name, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", "", nil, fmt.Errorf("%q: a repository wildcard needs the registry named first (registry.example.com/team/*, registry.example.com/**)", name)
	}
	reg = strings.ToLower(first)
	if !domainRE.MatchString(reg) {
		return "", "", nil, fmt.Errorf("invalid registry %q", first)
	}
	reg = dockerhub.Canonical(reg)
	sel, err = newRepoSelector(rest)
	if err != nil {
		return "", "", nil, err
	}
	return reg, sel.Prefix, sel, nil
}
