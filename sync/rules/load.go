package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/internal/envexpand"
)

// Options are the settings rule loading depends on.
type Options struct {
	// DefaultRegistry and DefaultNamespace are where an empty destination
	// ("") goes (--registry/--namespace, or DEFAULT_REGISTRY and
	// DEFAULT_NAMESPACE resolved by the caller).
	DefaultRegistry, DefaultNamespace string
	// LookupEnv resolves $VAR in destinations; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SetAside chooses how invalid rules are treated: nil is strict (one
	// invalid rule fails the whole file); set, an invalid rule is set
	// aside, its errors added to it (--skip-invalid-rules).
	SetAside *SetAside
}

// ErrorList holds every error found in a file. Error() puts one per line.
type ErrorList []error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As look at every error of the list.
func (l ErrorList) Unwrap() []error { return l }

// LoadFile reads an images file (.json, .yaml or .yml) and returns its
// rules in file order. Errors, the file's own included, come back as an
// ErrorList holding all of them. An empty file has no rules and no error.
func LoadFile(path string, opt Options) ([]Rule, error) {
	load := cfgfile.Load
	if opt.SetAside != nil {
		load = cfgfile.LoadKeepDuplicates // a repeated key sets its rules aside
	}
	n, err := load(path)
	if err != nil {
		return nil, ErrorList{err}
	}
	return FromNode(path, n, opt)
}

// FromNode builds the rules of a decoded images map (a whole images file,
// or the `images:` subtree of a legacy config file). A nil or null node has
// no rules. All errors are returned at once as an ErrorList. With
// opt.SetAside, n may hold repeated keys (cfgfile.LoadKeepDuplicates).
func FromNode(file string, n *cfgfile.Node, opt Options) ([]Rule, error) {
	if n == nil || n.Kind == cfgfile.Null {
		return nil, nil
	}
	if opt.SetAside != nil && n.Kind == cfgfile.Map {
		valid, skipped := fromNodeSkipping(file, n, opt)
		opt.SetAside.Add(skipped...)
		return valid, nil
	}
	if n.Kind != cfgfile.Map {
		return nil, ErrorList{&cfgfile.Error{File: file, Line: n.Line,
			Msg: fmt.Sprintf("images must be a map from source to destination(s), not a %s", n.Kind)}}
	}
	var errs ErrorList
	rules := make([]Rule, 0, len(n.Map))
	for _, kv := range n.Map {
		r, es := BuildRule(file, kv, opt)
		if len(es) > 0 {
			errs = append(errs, es...)
			continue
		}
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rules, nil
}

// BuildRule builds the rule of one key and its value (destination or list
// of destinations) of an images map; a native config's sync entry is built
// through it too (from: as the key, to: as the value), so both mean the same.
func BuildRule(file string, kv cfgfile.KeyValue, opt Options) (Rule, ErrorList) {
	var errs ErrorList
	fail := func(line int, msg string) {
		if line == 0 {
			line = kv.Line
		}
		errs = append(errs, &cfgfile.Error{File: file, Line: line, Key: kv.Key, Msg: msg})
	}
	r := Rule{File: file, Key: kv.Key, Line: kv.Line}

	// $VAR in a source key is an extension of image-syncer (which expands
	// destinations only); a "$" is never valid in a reference, so no
	// existing file changes meaning.
	var src Source
	key, err := envexpand.Expand(kv.Key, opt.LookupEnv)
	if err == nil {
		src, err = ParseSource(key)
	} else {
		err = fmt.Errorf("source: %w", err)
	}
	srcOK := err == nil
	if err != nil {
		fail(kv.Line, err.Error())
	}
	r.Source = src

	v := kv.Value
	var items []*cfgfile.Node
	switch {
	case v == nil || v.Kind == cfgfile.Null:
		line := kv.Line
		if v != nil && v.Line > 0 {
			line = v.Line
		}
		fail(line, `no destination (null); write "" for the default destination (--registry/--namespace)`)
	case v.Kind == cfgfile.String:
		items = []*cfgfile.Node{v}
	case v.Kind == cfgfile.List:
		if len(v.List) == 0 {
			fail(v.Line, "empty destination list")
		}
		for i, it := range v.List {
			if it == nil || it.Kind != cfgfile.String {
				kind := cfgfile.Null
				line := v.Line
				if it != nil {
					kind, line = it.Kind, it.Line
				}
				fail(line, fmt.Sprintf("destination must be a string or a list of strings (item %d is a %s)", i+1, kind))
				continue
			}
			items = append(items, it)
		}
	default:
		fail(v.Line, fmt.Sprintf("destination must be a string or a list of strings, not a %s", v.Kind))
	}

	seen := map[string]bool{}
	for _, it := range items {
		d, err := destination(it.Str, src, srcOK, opt)
		if err == errSkip {
			continue
		}
		if err != nil {
			fail(it.Line, err.Error())
			continue
		}
		d.Line = it.Line
		if d.Line == 0 {
			d.Line = kv.Line
		}
		k := d.identity()
		if seen[k] {
			continue // duplicate entries are dropped silently
		}
		seen[k] = true
		if srcOK {
			if err := checkDestination(src, d); err != nil {
				fail(d.Line, err.Error())
				continue
			}
		}
		r.Destinations = append(r.Destinations, d)
	}
	return r, errs
}

var errSkip = errors.New("skip")

// destination expands and parses one destination string.
func destination(raw string, src Source, srcOK bool, opt Options) (Destination, error) {
	s, err := envexpand.Expand(raw, opt.LookupEnv)
	if err != nil {
		return Destination{}, fmt.Errorf("destination %q: %v", raw, err)
	}
	if strings.TrimSpace(s) == "" {
		if srcOK && IsLayout(src.Registry) {
			return Destination{}, errors.New("an empty destination cannot take images out of a layout: write the destination registry/repository")
		}
		if opt.DefaultRegistry == "" {
			return Destination{}, errors.New("empty destination needs --registry (or DEFAULT_REGISTRY), with or without --namespace (DEFAULT_NAMESPACE)")
		}
		if !srcOK {
			return Destination{}, errSkip // the source's own error says it all
		}
		if src.Repos != nil {
			return Destination{}, errors.New("a source with a repository wildcard needs a destination: a registry or a repository prefix")
		}
		d, err := defaultDestination(src, opt)
		if err != nil {
			return Destination{}, err
		}
		d.Raw = raw
		return d, nil
	}
	if srcOK && (IsLayout(src.Registry) || src.Repos != nil) {
		if d, ok := bareRegistry(s); ok {
			d.Raw = raw
			return d, nil
		}
	}
	d, err := parseDestination(s)
	if err != nil {
		if s != raw {
			return Destination{}, fmt.Errorf("destination %q (expanded to %q): %v", raw, s, err)
		}
		return Destination{}, fmt.Errorf("destination %q: %v", raw, err)
	}
	d.Raw = raw
	return d, nil
}

// defaultDestination is DEFAULT_REGISTRY/DEFAULT_NAMESPACE/<repo>, where
// <repo> is the source repository path after its first component
// (image-syncer v1.4), or without a namespace DEFAULT_REGISTRY/<the source
// repository path> (image-syncer v1.5: docker.io/library/nginx → R/library/nginx).
func defaultDestination(src Source, opt Options) (Destination, error) {
	reg := strings.ToLower(strings.TrimSpace(opt.DefaultRegistry))
	ns := strings.Trim(strings.TrimSpace(opt.DefaultNamespace), "/")
	if !domainRE.MatchString(reg) {
		return Destination{}, fmt.Errorf("empty destination: invalid default registry %q", opt.DefaultRegistry)
	}
	repo := src.Repository
	if ns != "" {
		if _, rest, ok := strings.Cut(repo, "/"); ok {
			repo = rest
		}
		repo = ns + "/" + repo
	}
	reg, path, err := normalise(reg, repo)
	if err != nil {
		return Destination{}, fmt.Errorf("empty destination: %v", err)
	}
	return Destination{Registry: reg, Repository: path}, nil
}

// identity is the normalised text of a destination, for deduplication.
func (d Destination) identity() string {
	s := d.Registry + "/" + d.Repository
	if len(d.Tags) > 0 {
		s += ":" + strings.Join(d.Tags, ",")
	}
	if d.Digest != "" {
		s += "@" + d.Digest
	}
	return s
}

// name returns how a destination is shown in messages.
func (d Destination) name() string {
	if d.Raw != "" {
		return d.Raw
	}
	return d.identity()
}

// itemCount is the number of items (tags or digests) the source expands to,
// or -1 when it depends on a tag listing.
func (s Source) itemCount() int {
	switch s.Kind {
	case TagList:
		return len(s.Tags)
	case DigestRef:
		return 1
	}
	return -1
}

// Describe names the kind in messages ("all tags", "a digest").
func (k SelectorKind) Describe() string {
	switch k {
	case AllTags:
		return "all tags"
	case TagRegex:
		return "a tag regex"
	case TagList:
		return "a tag list"
	case DigestRef:
		return "a digest"
	case AllImages:
		return "every image of a layout"
	}
	return "unknown"
}

// checkDestination runs the checks that need no tag listing.
func checkDestination(src Source, d Destination) error {
	if err := checkLayoutRule(src, d); err != nil {
		return err
	}
	if err := checkDiscoveryDestination(src, d); err != nil {
		return err
	}
	n := src.itemCount()
	if d.Digest != "" {
		switch {
		case src.Kind == DigestRef:
			if d.Digest != src.Digest {
				return fmt.Errorf("destination %q: digest %s differs from the source digest %s", d.name(), d.Digest, src.Digest)
			}
		case src.Kind == TagList && len(src.Tags) == 1:
			// checked by the engine once the source tag is resolved
		default:
			return fmt.Errorf("destination %q: a digest destination needs a source digest or a single source tag, not %s", d.name(), src.Kind.Describe())
		}
	}
	switch {
	case len(d.Tags) == 1 && n >= 0 && n != 1:
		return fmt.Errorf("destination %q renames to the single tag %q but the source has %d tags", d.name(), d.Tags[0], n)
	case len(d.Tags) > 1 && n < 0:
		return fmt.Errorf("destination %q lists %d tags but the source is %s (no fixed tag count); list the source tags as :t1,t2", d.name(), len(d.Tags), src.Kind.Describe())
	case len(d.Tags) > 1 && n != len(d.Tags):
		what := "tags"
		if src.Kind == DigestRef {
			what = "item (a digest)"
		}
		return fmt.Errorf("destination %q lists %d tags but the source has %d %s", d.name(), len(d.Tags), n, what)
	}
	return nil
}
