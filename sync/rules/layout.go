package rules

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imagesync/imagesync/oci"
)

// Layout schemes: an OCI image layout directory, or a tar archive of one.
// A rule names them as `oci:DIR` and `oci-archive:FILE`; a source may pick
// one image with `oci:DIR:REF`. In a Ref or a Source they take the place of
// the registry (Registry is "oci:DIR" or "oci-archive:FILE") and the
// repository is the image's name inside the layout: its full source
// repository ("docker.io/library/nginx"), or "" for a name that is a bare tag.
const (
	SchemeLayout  = string(oci.SchemeLayout)
	SchemeArchive = string(oci.SchemeArchive)
)

// LayoutLocation splits the registry part of a Ref or Source that names an
// image layout into its path and whether it is an archive. ok is false for
// a registry.
func LayoutLocation(registry string) (path string, archive, ok bool) {
	scheme, rest := oci.SchemeOf(registry)
	if scheme == oci.SchemeRegistry {
		return "", false, false
	}
	return rest, scheme == oci.SchemeArchive, true
}

// IsLayout reports whether a Ref's or Source's registry names an image layout.
func IsLayout(registry string) bool {
	_, _, ok := LayoutLocation(registry)
	return ok
}

// Scheme is how the store of the reference is reached (a registry, oci:,
// oci-archive:).
func (r Ref) Scheme() oci.Scheme {
	s, _ := oci.SchemeOf(r.Registry)
	return s
}

// hasLayoutScheme reports whether a rule string starts with a layout scheme.
func hasLayoutScheme(s string) bool {
	return strings.HasPrefix(s, SchemeLayout) || strings.HasPrefix(s, SchemeArchive)
}

// parseLayout reads `oci:DIR`, `oci:DIR:REF`, `oci-archive:FILE` and
// `oci-archive:FILE:REF`. REF is a name as the layout's index.json holds it:
// a full reference with a tag or a digest (normalised like any source), or a
// bare tag. The path is split from REF at the first ':' whose rest is such a
// name (a Windows drive letter is never split off).
func parseLayout(s string) (location string, ref *Ref, err error) {
	scheme := SchemeLayout
	if strings.HasPrefix(s, SchemeArchive) {
		scheme = SchemeArchive
	}
	rest := s[len(scheme):]
	path := rest
	for i := 0; i < len(rest); i++ {
		if rest[i] != ':' || i == 0 {
			continue
		}
		if i == 1 && isDriveLetter(rest[0]) && len(rest) > 2 && (rest[2] == '\\' || rest[2] == '/') {
			continue // C:\bundle
		}
		r, rerr := ParseLayoutName(rest[i+1:])
		if rerr != nil {
			continue
		}
		path, ref = rest[:i], &r
		break
	}
	if strings.TrimSpace(path) == "" {
		return "", nil, fmt.Errorf("%s needs a path: %sDIR", strings.TrimSuffix(scheme, ":"), scheme)
	}
	return scheme + filepath.Clean(path), ref, nil
}

func isDriveLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// ParseLayoutName reads a name from an image layout's index.json (the
// org.opencontainers.image.ref.name annotation): `registry/repository:tag`
// or `registry/repository@digest` (normalised: `nginx:1.27` is
// `docker.io/library/nginx:1.27`), or a bare tag (`latest`), which has an
// empty Repository.
func ParseLayoutName(name string) (Ref, error) {
	if name == "" {
		return Ref{}, errors.New("empty name")
	}
	if !strings.ContainsAny(name, "/:@") && oci.ValidTag(name) {
		return Ref{Tag: name}, nil
	}
	n, tags, digest, err := splitRef(name)
	if err != nil {
		return Ref{}, err
	}
	if len(tags) > 1 || (len(tags) == 0 && digest == "") {
		return Ref{}, fmt.Errorf("%q names no single tag or digest", name)
	}
	reg, repo, err := parseName(n)
	if err != nil {
		return Ref{}, err
	}
	r := Ref{Registry: reg, Repository: repo, Digest: digest}
	if len(tags) == 1 {
		r.Tag = tags[0]
	}
	return r, nil
}

// layoutSource builds the Source of a rule key naming a layout.
func layoutSource(s string) (Source, error) {
	loc, ref, err := parseLayout(s)
	if err != nil {
		return Source{}, err
	}
	src := Source{Registry: loc, Kind: AllImages}
	if ref != nil {
		src.Repository = ref.Repo()
		if ref.Registry == "" {
			src.Repository = ""
		}
		if ref.Digest != "" {
			src.Kind, src.Digest = DigestRef, ref.Digest
		} else {
			src.Kind, src.Tags = TagList, []string{ref.Tag}
		}
	}
	return src, nil
}

// layoutDestination builds the Destination of a rule value naming a layout.
func layoutDestination(s string) (Destination, error) {
	loc, ref, err := parseLayout(s)
	if err != nil {
		return Destination{}, err
	}
	if ref != nil {
		return Destination{}, fmt.Errorf("a layout destination takes no image name (images keep their source name in index.json): write %s", loc)
	}
	return Destination{Registry: loc}, nil
}

// layoutItemDestination is where one source image goes when the source or
// the destination is a layout. Into a layout, an image keeps its full source
// name. Out of one, into a registry, its repository path below its original
// registry is appended to the destination repository.
func layoutItemDestination(d Destination, s Ref) Ref {
	name := s.Repo() // the full source name: registry/repository
	if IsLayout(s.Registry) {
		name = s.Repository // already registry/repository ("" for a bare tag)
	}
	if IsLayout(d.Registry) {
		return Ref{Registry: d.Registry, Repository: name, Tag: s.Tag}
	}
	repo := d.Repository
	if _, path, ok := strings.Cut(name, "/"); ok {
		if repo != "" {
			path = repo + "/" + path
		}
		repo = path
	}
	return Ref{Registry: d.Registry, Repository: repo, Tag: s.Tag}
}

// bareRegistry reads a destination that is a registry alone
// ("registry.internal", "127.0.0.1:5000"): for a layout source, the images
// go to their repository paths right below it. Elsewhere such a string is a
// Docker Hub repository, as image-syncer reads it.
func bareRegistry(s string) (Destination, bool) {
	s = strings.TrimSpace(s)
	host := strings.ToLower(s)
	if s == "" || strings.ContainsAny(s, "/@") || !domainRE.MatchString(host) || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		return Destination{}, false
	}
	return Destination{Registry: host}, true
}

// checkLayoutRule refuses the destination forms that a layout source or
// destination cannot honour.
func checkLayoutRule(src Source, d Destination) error {
	if IsLayout(src.Registry) && !IsLayout(d.Registry) && (len(d.Tags) > 0 || d.Digest != "") {
		return fmt.Errorf("destination %q: the images of a layout keep their names below the destination repository; give a repository without tag or digest", d.name())
	}
	return nil
}

// filterLayoutItems drops the names of referrer tags when the rule copies
// referrers (they travel with their subject, as from a registry), then
// applies the rule's tag filter to the images a layout names, repository by
// repository (latest: N keeps N tags of each); images named by digest are
// kept. Removed tags are reported with their repository.
func (r *Rule) filterLayoutItems(items []Ref) []Ref {
	r.Steps = nil
	if r.Referrers != nil {
		kept := items[:0:0]
		var removed []string
		for _, it := range items {
			if it.Tag != "" && IsReferrerTag(it.Tag) {
				removed = append(removed, layoutName(it.Repository, it.Tag, ""))
				continue
			}
			kept = append(kept, it)
		}
		if len(removed) > 0 {
			r.Steps = append(r.Steps, FilterStep{Filter: "referrers", Removed: removed})
		}
		items = kept
	}
	if r.Tags.Empty() {
		return items
	}
	byRepo := map[string][]string{}
	var order []string
	for _, it := range items {
		if it.Tag == "" {
			continue
		}
		if _, ok := byRepo[it.Repository]; !ok {
			order = append(order, it.Repository)
		}
		byRepo[it.Repository] = append(byRepo[it.Repository], it.Tag)
	}
	keep := map[string]bool{}
	step := map[string]int{} // filter → index in r.Steps: one step per filter, all repositories
	for _, repo := range order {
		kept, steps := r.Tags.Apply(byRepo[repo])
		for _, st := range steps {
			i, ok := step[st.Filter]
			if !ok {
				i = len(r.Steps)
				step[st.Filter] = i
				r.Steps = append(r.Steps, FilterStep{Filter: st.Filter})
			}
			for _, t := range st.Removed {
				r.Steps[i].Removed = append(r.Steps[i].Removed, layoutName(repo, t, ""))
			}
		}
		for _, t := range kept {
			keep[layoutName(repo, t, "")] = true
		}
	}
	out := items[:0:0]
	for _, it := range items {
		if it.Tag == "" || keep[layoutName(it.Repository, it.Tag, "")] {
			out = append(out, it)
		}
	}
	return out
}

// layoutName is the name an image has in a layout's index.json: its
// repository (with the registry) and tag or digest, or the bare tag.
func layoutName(repository, tag, digest string) string {
	switch {
	case repository == "" && tag != "":
		return tag
	case tag != "":
		return repository + ":" + tag
	default:
		return repository + "@" + digest
	}
}

// CanonicalLayoutName is an index.json name in the form images are looked
// up by: registry and repository normalised ("nginx:1.27" is
// "docker.io/library/nginx:1.27"); "" for a name that is not one.
func CanonicalLayoutName(name string) string {
	r, err := ParseLayoutName(name)
	if err != nil {
		return ""
	}
	repo := ""
	if r.Registry != "" {
		repo = r.Registry + "/" + r.Repository
	}
	return layoutName(repo, r.Tag, r.Digest)
}
