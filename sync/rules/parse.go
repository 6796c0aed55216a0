package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/dockerhub"
)

var (
	// Distribution reference grammar: one path component.
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$`)
	// A registry host (lower-cased first): DNS name or IPv4, or a bracketed
	// IPv6 address, with an optional port.
	domainRE = regexp.MustCompile(`^(?:(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])(?:\.(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9]))*|\[[0-9a-f:.]+\])(?::[0-9]+)?$`)
)

// Tags and digests are checked by oci.ValidTag and oci.ValidDigest: the
// same grammar, without compiling a 128-fold repetition into a regexp at
// every start of the binary.

// digestHexLen lists the supported digest algorithms and their hex lengths.
var digestHexLen = map[string]int{"sha256": 64, "sha512": 128}

const maxNameLen = 255

// ParseSource parses a rule key: `reg/ns/repo`, `reg/ns/repo:t`,
// `reg/ns/repo:t1,t2`, `reg/ns/repo@sha256:…` or `reg/ns/repo:/REGEX/`.
// Names are normalised like Docker does (`nginx` is
// `docker.io/library/nginx`).
func ParseSource(s string) (Source, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Source{}, errors.New("empty source")
	}
	if hasLayoutScheme(s) {
		return layoutSource(s)
	}
	// The regex form: everything after the first ":/" up to the final "/".
	// A registry port never produces ":/" (":5000/"), so this is unambiguous.
	if i := strings.Index(s, ":/"); i >= 0 {
		reg, repo, sel, err := parseSourceName(s[:i])
		if err != nil {
			return Source{}, err
		}
		rest := s[i+2:]
		if !strings.HasSuffix(rest, "/") {
			return Source{}, fmt.Errorf("tag regex %q must be written as :/REGEX/ (missing final /)", s[i+1:])
		}
		expr := rest[:len(rest)-1]
		if expr == "" {
			return Source{}, errors.New("empty tag regex (:/REGEX/)")
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return Source{}, fmt.Errorf("bad tag regex: %v", err)
		}
		return Source{Registry: reg, Repository: repo, Kind: TagRegex, Regex: re, Repos: sel}, nil
	}
	name, tags, digest, err := splitRef(s)
	if err != nil {
		return Source{}, err
	}
	reg, repo, sel, err := parseSourceName(name)
	if err != nil {
		return Source{}, err
	}
	if sel != nil && digest != "" {
		return Source{}, fmt.Errorf("%q: a digest names one image, not one in each repository of a wildcard", s)
	}
	src := Source{Registry: reg, Repository: repo, Repos: sel}
	switch {
	case digest != "":
		src.Kind, src.Digest = DigestRef, digest
	case tags != nil:
		src.Kind, src.Tags = TagList, tags
	default:
		src.Kind = AllTags
	}
	return src, nil
}

// ParseDestination parses one destination (after $VAR expansion):
// `reg/ns/repo`, `reg/ns/repo:t`, `reg/ns/repo:a,b,c` or
// `reg/ns/repo@sha256:…`. The empty destination is handled by the rule
// loader (it needs the defaults), so here it is an error.
func ParseDestination(s string) (Destination, error) {
	d, err := parseDestination(s)
	if err != nil {
		return Destination{}, fmt.Errorf("destination %q: %v", s, err)
	}
	return d, nil
}

func parseDestination(s string) (Destination, error) {
	raw := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Destination{}, errors.New("empty destination")
	}
	if hasLayoutScheme(s) {
		d, err := layoutDestination(s)
		d.Raw = raw
		return d, err
	}
	if strings.Contains(s, ":/") {
		return Destination{}, errors.New("a tag regex (:/REGEX/) is only allowed in a source")
	}
	reg, repo, tags, digest, err := parseRef(s)
	if err != nil {
		return Destination{}, err
	}
	return Destination{Raw: raw, Registry: reg, Repository: repo, Tags: tags, Digest: digest}, nil
}

// parseRef parses `name[:tags][@digest]` into a registry, a repository
// (normalised like Docker), the tags and the digest.
func parseRef(s string) (reg, repo string, tags []string, digest string, err error) {
	name, tags, digest, err := splitRef(s)
	if err != nil {
		return "", "", nil, "", err
	}
	reg, repo, err = parseName(name)
	return reg, repo, tags, digest, err
}

// splitRef splits `name[:tags][@digest]`. A tag is a ":" after the last "/",
// so registry ports are not mistaken for tags.
func splitRef(s string) (name string, tags []string, digest string, err error) {
	name = s
	hasDigest := false
	if i := strings.IndexByte(s, '@'); i >= 0 {
		name, digest, hasDigest = s[:i], s[i+1:], true
	}
	slash := strings.LastIndexByte(name, '/')
	if c := strings.IndexByte(name[slash+1:], ':'); c >= 0 {
		c += slash + 1
		if hasDigest {
			return "", nil, "", errors.New("give either a tag or a digest, not both")
		}
		tags, err = parseTags(name[c+1:])
		if err != nil {
			return "", nil, "", err
		}
		name = name[:c]
	}
	if hasDigest {
		if err := checkDigest(digest); err != nil {
			return "", nil, "", err
		}
	}
	return name, tags, digest, nil
}

func parseTags(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("empty tag after ':'")
	}
	parts := strings.Split(list, ",")
	tags := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("empty item %d in tag list %q", i+1, list)
		}
		if !oci.ValidTag(p) {
			return nil, fmt.Errorf("invalid tag %q (tags are 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-')", p)
		}
		tags = append(tags, p)
	}
	return tags, nil
}

func checkDigest(d string) error {
	if d == "" {
		return errors.New("empty digest after '@'")
	}
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return fmt.Errorf("invalid digest %q (want sha256:<64 hex digits>)", d)
	}
	n, known := digestHexLen[algo]
	if !known {
		return fmt.Errorf("invalid digest %q: unsupported algorithm %q (use sha256 or sha512)", d, algo)
	}
	if len(hex) != n || !oci.ValidDigest(d) {
		return fmt.Errorf("invalid digest %q: %s needs %d lowercase hex digits", d, algo, n)
	}
	return nil
}

// parseName splits and normalises a repository name the way Docker does.
func parseName(name string) (registry, repository string, err error) {
	if name == "" {
		return "", "", errors.New("missing repository name")
	}
	first, rest, found := strings.Cut(name, "/")
	// Like Docker: the first component is a registry when it has a '.' or a
	// ':', is "localhost", or has upper-case letters (repositories cannot).
	if found && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		registry, repository = strings.ToLower(first), rest
		if !strings.ContainsAny(registry, ".:") && registry != "localhost" {
			// "MyReg/x" is a registry only because of its capitals; once
			// lower-cased ("myreg/x") it would read as a Docker Hub
			// namespace, so every reference written back would change meaning.
			return "", "", fmt.Errorf("registry %q is ambiguous: write it as a host name with a dot or a port (e.g. %s.local or %s:443), or in lower case for a Docker Hub namespace", first, registry, registry)
		}
		if !domainRE.MatchString(registry) {
			return "", "", fmt.Errorf("invalid registry %q", first)
		}
	} else {
		registry, repository = DockerHub, name
	}
	return normalise(registry, repository)
}

// normalise applies Docker Hub aliases and validates the repository path.
func normalise(registry, repository string) (string, string, error) {
	registry = dockerhub.Canonical(registry)
	if repository == "" {
		return "", "", fmt.Errorf("missing repository path after registry %q", registry)
	}
	if err := checkRepository(repository); err != nil {
		return "", "", err
	}
	repository = dockerhub.Repository(registry, repository)
	if len(registry)+1+len(repository) > maxNameLen {
		return "", "", fmt.Errorf("repository name %q is longer than %d characters", registry+"/"+repository, maxNameLen)
	}
	return registry, repository, nil
}

func checkRepository(repository string) error {
	for _, c := range strings.Split(repository, "/") {
		if pathComponentRE.MatchString(c) {
			continue
		}
		if c == "" {
			return fmt.Errorf("invalid repository path %q: empty path component", repository)
		}
		if strings.ToLower(c) != c && pathComponentRE.MatchString(strings.ToLower(c)) {
			return fmt.Errorf("invalid repository path %q: must be lowercase", repository)
		}
		return fmt.Errorf("invalid repository path %q: component %q must match [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*", repository, c)
	}
	return nil
}

// IsRegistryHost reports whether s is a registry host[:port] as references
// write it (lower case, a bracketed IPv6 address allowed).
func IsRegistryHost(s string) bool { return domainRE.MatchString(s) }
