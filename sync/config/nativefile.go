package config

import (
	"fmt"
	"sort"
	"time"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

// Native is imagesync's own configuration file (imagesync.yaml or .json):
// defaults, per-registry settings and sync entries with tag, platform and
// referrer filters. See docs/imagesync.schema.json.
type Native struct {
	File     string
	Defaults NativeDefaults
	// AuthFile is the image-syncer auth file the registries' `auth: {entry}`
	// name (resolved against the config file's folder); "" when none.
	AuthFile     string
	AuthFileLine int
	Registries   []RegistrySettings
	Rules        []rules.Rule
	// Every is the watch-mode interval of `every:` (sync --every); 0: none.
	Every time.Duration
}

// NativeDefaults are the run settings of `defaults:`; nil when not given
// (the command-line flag or its default applies).
type NativeDefaults struct {
	Proc, Retries, MaxConns *int
	Rate                    *float64
	TrustLedger             *bool // --trust-ledger
	// rules.Rule holds what every sync entry inherits unless it sets its own.
	Rule rules.RuleDefaults
}

// RegistrySettings is one entry of `registries:`: a registry, or a
// registry/namespace prefix (the longest matching prefix wins, as in auth
// files); Rate and MaxConns need a bare registry.
type RegistrySettings struct {
	Key      string // as written
	Line     int
	Insecure bool
	CA       string // resolved paths
	Cert     string
	KeyFile  string
	Rate     float64 // requests per second to this registry; 0: the run's --rate
	MaxConns int     // requests in flight to this registry; 0: the run's --max-conns
	// Credentials by reference, never inline: an auth-file entry, or
	// environment variables holding the user name and the password.
	AuthEntry                string
	AuthLine                 int
	UsernameEnv, PasswordEnv string
	Username, Password       string // read from UsernameEnv/PasswordEnv at load
}

// HasCredentials reports whether the entry names credentials.
func (r RegistrySettings) HasCredentials() bool {
	return r.AuthEntry != "" || r.UsernameEnv != "" || r.PasswordEnv != ""
}

// IsNative reports whether a decoded file is a native config file rather
// than an image-syncer images file: it is a map with a `sync:` list.
func IsNative(n *cfgfile.Node) bool {
	v, ok := n.Get("sync")
	if !ok || v == nil || v.Kind != cfgfile.List || len(v.List) == 0 {
		return false
	}
	for _, it := range v.List {
		if it == nil || it.Kind != cfgfile.Map {
			return false // an image-syncer key "sync" with a list of destinations
		}
	}
	return true
}

// LoadNative reads a native config file. Every error names the file, the
// line and the field (e.g. `sync[2].tags.semver`); all come back at once as
// an rules.ErrorList. Nothing is contacted.
func LoadNative(path string, opt rules.Options) (*Native, error) {
	n, err := cfgfile.Load(path)
	if err != nil {
		return nil, rules.ErrorList{err}
	}
	return NativeFromNode(path, n, opt)
}

// nativeLoader accumulates the errors of one file.
type nativeLoader struct {
	file string
	opt  rules.Options
	errs rules.ErrorList
	// skipped holds the errors of the sync entries set aside
	// (opt.SetAside): any other error still fails the whole file.
	skipped rules.ErrorList
}

func (l *nativeLoader) fail(line int, field, format string, a ...any) {
	l.errs = append(l.errs, &cfgfile.Error{File: l.file, Line: line, Key: field, Msg: fmt.Sprintf(format, a...)})
}

// NativeFromNode builds a Native from a decoded file.
func NativeFromNode(file string, n *cfgfile.Node, opt rules.Options) (*Native, error) {
	return (&nativeLoader{file: file, opt: opt}).load(n)
}

func (l *nativeLoader) load(n *cfgfile.Node) (*Native, error) {
	cfg := &Native{File: l.file}
	if n == nil || n.Kind != cfgfile.Map {
		kind := cfgfile.Null
		line := 0
		if n != nil {
			kind, line = n.Kind, n.Line
		}
		l.fail(line, "", "a config file is a map with sync: (and optionally defaults:, registries:, auth-file:), not a %s", kind)
		return nil, l.errs
	}
	var syncNode *cfgfile.Node
	for _, kv := range n.Map {
		switch kv.Key {
		case "$schema":
			l.str(kv, kv.Key)
		case "defaults":
			cfg.Defaults = l.defaults(kv)
		case "registries":
			cfg.Registries = l.registries(kv)
		case "auth-file":
			if p, ok := l.path(kv, "auth-file"); ok {
				cfg.AuthFile, cfg.AuthFileLine = p, kv.Line
			}
		case "every":
			cfg.Every = l.every(kv)
		case "sync":
			syncNode = kv.Value
			if syncNode == nil || syncNode.Kind != cfgfile.List {
				l.fail(kv.Line, "sync", "must be a list of entries with from: and to:")
				syncNode = nil
			}
		default:
			l.fail(kv.Line, kv.Key, "unknown field (known: defaults, registries, auth-file, every, sync)")
		}
	}
	if _, ok := n.Get("sync"); !ok {
		l.fail(n.Line, "sync", "missing: a config file lists what to copy under sync: (an image-syncer rule file goes with --images)")
	}
	if syncNode != nil {
		if len(syncNode.List) == 0 {
			l.fail(syncNode.Line, "sync", "empty list: nothing to copy")
		}
		for i, e := range syncNode.List {
			before := len(l.errs)
			r, ok := l.entry(i, e)
			if l.opt.SetAside != nil && len(l.errs) > before {
				l.skipped = append(l.skipped, l.errs[before:]...)
				l.errs = l.errs[:before]
				continue
			}
			if ok {
				cfg.Rules = append(cfg.Rules, r)
			}
		}
		if l.opt.SetAside != nil && len(cfg.Rules) == 0 && len(l.skipped) > 0 {
			l.errs, l.skipped = append(l.errs, l.skipped...), nil // no valid entry at all: nothing to run
		}
	}
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool { return errLine(l.errs[i]) < errLine(l.errs[j]) })
		return nil, l.errs
	}
	if l.opt.SetAside != nil {
		l.opt.SetAside.Add(l.skipped...)
	}
	return cfg, nil
}

// entry reads one item of sync:.
func (l *nativeLoader) entry(i int, n *cfgfile.Node) (rules.Rule, bool) {
	field := fmt.Sprintf("sync[%d]", i)
	if n == nil || n.Kind != cfgfile.Map {
		ln := 0
		if n != nil {
			ln = n.Line
		}
		l.fail(ln, field, "must be a map with from: and to:")
		return rules.Rule{}, false
	}
	var from, to, repos *cfgfile.KeyValue
	var settings rules.RuleDefaults
	tagsLine := 0
	bad := len(l.errs)
	for _, f := range l.mapFields(cfgfile.KeyValue{Key: field, Line: n.Line, Value: n}, field, "from", "to", "tags", "platforms", "platform-mode", "referrers", "repositories", "immutable", "min-age", "prune") {
		switch f.Key {
		case "from":
			from = &f
		case "repositories":
			repos = &f
		case "to":
			to = &f
		case "tags":
			tagsLine = f.Line
			l.ruleSetting(f, field+"."+f.Key, &settings)
		default:
			l.ruleSetting(f, field+"."+f.Key, &settings)
		}
	}
	if from == nil {
		l.fail(n.Line, field+".from", "missing: the source repository or image")
	}
	if to == nil {
		l.fail(n.Line, field+".to", "missing: the destination (a string or a list)")
	}
	if from == nil || to == nil {
		return rules.Rule{}, false
	}
	src, ok := l.str(*from, field+".from")
	if !ok {
		return rules.Rule{}, false
	}
	// The image-syncer machinery does the rest: from is a rule key and to
	// its value. Its errors are renamed to the native fields.
	r, errs := rules.BuildRule(l.file, cfgfile.KeyValue{Key: src, Line: line(*from), Value: to.Value}, l.opt)
	for _, e := range errs {
		if ce, ok := e.(*cfgfile.Error); ok {
			ce.Key = field + ".to"
			if ce.Line == line(*from) && from.Line != to.Line {
				ce.Key = field + ".from"
			}
		}
		l.errs = append(l.errs, e)
	}
	if len(errs) > 0 || len(l.errs) > bad {
		return rules.Rule{}, false
	}
	if repos != nil && !l.applyRepositories(&r, *repos, field+".repositories") {
		return rules.Rule{}, false
	}
	r.Key = field
	r.Tags, r.Platforms, r.PlatformMode, r.Referrers, r.Immutable = settings.Tags, settings.Platforms, settings.PlatformMode, settings.Referrers, settings.Immutable
	r.MinAge = settings.MinAge
	if settings.Prune != nil {
		r.SetPrune(*settings.Prune)
	}
	if r.Tags != nil && !r.NeedsTagList() {
		l.fail(tagsLine, field+".tags", "tag filters select among listed tags: from names %s, so drop tags: or the tag from from:", r.Source.Kind.Describe())
		return rules.Rule{}, false
	}
	return r, true
}

func errLine(err error) int {
	if ce, ok := err.(*cfgfile.Error); ok {
		return ce.Line
	}
	return 0
}
