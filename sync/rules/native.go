package rules

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/internal/envexpand"
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
	Rules        []Rule
}

// NativeDefaults are the run settings of `defaults:`; nil when not given
// (the command-line flag or its default applies).
type NativeDefaults struct {
	Proc, Retries, MaxConns *int
	Rate                    *float64
	TrustLedger             *bool // --trust-ledger
	// Rule holds what every sync entry inherits unless it sets its own.
	Rule RuleDefaults
}

// RuleDefaults are the per-rule settings a rule without its own inherits
// (from `defaults:` or from the one-off flags).
type RuleDefaults struct {
	Tags         *TagFilter
	Platforms    []string // nil: not set
	PlatformMode string
	Referrers    *Referrers
}

// ApplyDefaults fills the settings rules do not set themselves. Tag filters
// only go to rules that list tags.
func ApplyDefaults(rs []Rule, d RuleDefaults) {
	for i := range rs {
		r := &rs[i]
		if r.Tags == nil && d.Tags != nil && r.NeedsTagList() {
			r.Tags = d.Tags
		}
		if r.Platforms == nil && d.Platforms != nil {
			r.Platforms = d.Platforms
		}
		if r.PlatformMode == "" {
			r.PlatformMode = d.PlatformMode
		}
		if r.Referrers == nil && d.Referrers != nil {
			r.Referrers = d.Referrers
		}
	}
}

// Merge returns d with every setting o has replacing d's.
func (d RuleDefaults) Merge(o RuleDefaults) RuleDefaults {
	if o.Tags != nil {
		d.Tags = o.Tags
	}
	if o.Platforms != nil {
		d.Platforms = o.Platforms
	}
	if o.PlatformMode != "" {
		d.PlatformMode = o.PlatformMode
	}
	if o.Referrers != nil {
		d.Referrers = o.Referrers
	}
	return d
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

// PlatformRE is the form of one platform: os/arch[/variant].
var PlatformRE = regexp.MustCompile(`^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$`)

// PlatformModes are the values of platform-mode.
var PlatformModes = []string{"rewrite", "keep-index"}

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
// an ErrorList. Nothing is contacted.
func LoadNative(path string, opt Options) (*Native, error) {
	n, err := cfgfile.Load(path)
	if err != nil {
		return nil, ErrorList{err}
	}
	return NativeFromNode(path, n, opt)
}

// LoadNativeSkipping is LoadNative for --skip-invalid-rules: a sync entry
// with errors is set aside (its errors come back in skipped) and the others
// kept; any other error still fails the whole file.
func LoadNativeSkipping(path string, opt Options) (cfg *Native, skipped ErrorList, err error) {
	n, err := cfgfile.Load(path)
	if err != nil {
		return nil, nil, ErrorList{err}
	}
	l := &nativeLoader{file: path, opt: opt, skipEntries: true}
	cfg, err = l.load(n)
	return cfg, l.skipped, err
}

// nativeLoader accumulates the errors of one file.
type nativeLoader struct {
	file string
	opt  Options
	errs ErrorList
	// skipEntries sets aside the sync entries with errors (into skipped).
	skipEntries bool
	skipped     ErrorList
}

func (l *nativeLoader) fail(line int, field, format string, a ...any) {
	l.errs = append(l.errs, &cfgfile.Error{File: l.file, Line: line, Key: field, Msg: fmt.Sprintf(format, a...)})
}

// NativeFromNode builds a Native from a decoded file.
func NativeFromNode(file string, n *cfgfile.Node, opt Options) (*Native, error) {
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
		case "sync":
			syncNode = kv.Value
			if syncNode == nil || syncNode.Kind != cfgfile.List {
				l.fail(kv.Line, "sync", "must be a list of entries with from: and to:")
				syncNode = nil
			}
		default:
			l.fail(kv.Line, kv.Key, "unknown field (known: defaults, registries, auth-file, sync)")
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
			if l.skipEntries && len(l.errs) > before {
				l.skipped = append(l.skipped, l.errs[before:]...)
				l.errs = l.errs[:before]
				continue
			}
			if ok {
				cfg.Rules = append(cfg.Rules, r)
			}
		}
		if l.skipEntries && len(cfg.Rules) == 0 && len(l.skipped) > 0 {
			l.errs, l.skipped = append(l.errs, l.skipped...), nil // no valid entry at all: nothing to run
		}
	}
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool { return errLine(l.errs[i]) < errLine(l.errs[j]) })
		return nil, l.errs
	}
	return cfg, nil
}

func (l *nativeLoader) mapFields(kv cfgfile.KeyValue, field string, known ...string) []cfgfile.KeyValue {
	v := kv.Value
	if v == nil || v.Kind != cfgfile.Map {
		l.fail(kv.Line, field, "must be a map (fields: %s)", strings.Join(known, ", "))
		return nil
	}
	var out []cfgfile.KeyValue
	for _, f := range v.Map {
		ok := false
		for _, k := range known {
			ok = ok || f.Key == k
		}
		if !ok {
			l.fail(f.Line, field+"."+f.Key, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		out = append(out, f)
	}
	return out
}

func line(kv cfgfile.KeyValue) int {
	if kv.Value != nil && kv.Value.Line > 0 {
		return kv.Value.Line
	}
	return kv.Line
}

func (l *nativeLoader) str(kv cfgfile.KeyValue, field string) (string, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.String {
		l.fail(line(kv), field, "must be a string")
		return "", false
	}
	return kv.Value.Str, true
}

// expanded is a string field with $VAR expanded.
func (l *nativeLoader) expanded(kv cfgfile.KeyValue, field string) (string, bool) {
	s, ok := l.str(kv, field)
	if !ok {
		return "", false
	}
	out, err := envexpand.Expand(s, l.opt.LookupEnv)
	if err != nil {
		l.fail(line(kv), field, "%v", err)
		return "", false
	}
	return out, true
}

func (l *nativeLoader) path(kv cfgfile.KeyValue, field string) (string, bool) {
	p, ok := l.expanded(kv, field)
	if !ok {
		return "", false
	}
	if p == "" {
		l.fail(line(kv), field, "must be a file path")
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(l.file), p)
	}
	if _, err := os.Stat(p); err != nil {
		l.fail(line(kv), field, "%v", err)
		return "", false
	}
	return p, true
}

func (l *nativeLoader) boolean(kv cfgfile.KeyValue, field string) (bool, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Bool {
		l.fail(line(kv), field, "must be true or false")
		return false, false
	}
	return kv.Value.Bool, true
}

func (l *nativeLoader) integer(kv cfgfile.KeyValue, field string, min int) (int, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Number {
		l.fail(line(kv), field, "must be a whole number")
		return 0, false
	}
	n, err := strconv.Atoi(kv.Value.Str)
	if err != nil || n < min {
		l.fail(line(kv), field, "must be a whole number of at least %d, not %s", min, kv.Value.Str)
		return 0, false
	}
	return n, true
}

func (l *nativeLoader) number(kv cfgfile.KeyValue, field string) (float64, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Number {
		l.fail(line(kv), field, "must be a number")
		return 0, false
	}
	f, err := strconv.ParseFloat(kv.Value.Str, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		l.fail(line(kv), field, "must be a number above 0, not %s", kv.Value.Str)
		return 0, false
	}
	return f, true
}

// strings is a string or a list of strings.
func (l *nativeLoader) strings(kv cfgfile.KeyValue, field string) ([]string, bool) {
	v := kv.Value
	switch {
	case v != nil && v.Kind == cfgfile.String:
		return []string{v.Str}, true
	case v != nil && v.Kind == cfgfile.List:
		out := []string{}
		ok := true
		for i, it := range v.List {
			if it == nil || it.Kind != cfgfile.String {
				ln := v.Line
				if it != nil && it.Line > 0 {
					ln = it.Line
				}
				l.fail(ln, fmt.Sprintf("%s[%d]", field, i), "must be a string")
				ok = false
				continue
			}
			out = append(out, it.Str)
		}
		return out, ok
	}
	l.fail(line(kv), field, "must be a string or a list of strings")
	return nil, false
}

func (l *nativeLoader) defaults(kv cfgfile.KeyValue) NativeDefaults {
	var d NativeDefaults
	for _, f := range l.mapFields(kv, "defaults", "proc", "retries", "max-conns", "rate", "trust-ledger", "platforms", "platform-mode", "referrers", "tags") {
		field := "defaults." + f.Key
		switch f.Key {
		case "proc", "max-conns":
			if n, ok := l.integer(f, field, 1); ok {
				if f.Key == "proc" {
					d.Proc = &n
				} else {
					d.MaxConns = &n
				}
			}
		case "retries":
			if n, ok := l.integer(f, field, 0); ok {
				d.Retries = &n
			}
		case "rate":
			if x, ok := l.number(f, field); ok {
				d.Rate = &x
			}
		case "trust-ledger":
			if b, ok := l.boolean(f, field); ok {
				d.TrustLedger = &b
			}
		default:
			l.ruleSetting(f, field, &d.Rule)
		}
	}
	return d
}

// ruleSetting reads one of the settings a sync entry and defaults share.
func (l *nativeLoader) ruleSetting(f cfgfile.KeyValue, field string, d *RuleDefaults) {
	switch f.Key {
	case "platforms":
		if ps, ok := l.platforms(f, field); ok {
			d.Platforms = ps
		}
	case "platform-mode":
		if s, ok := l.str(f, field); ok {
			if s != "rewrite" && s != "keep-index" {
				l.fail(line(f), field, "must be rewrite or keep-index, not %q", s)
			} else {
				d.PlatformMode = s
			}
		}
	case "referrers":
		d.Referrers = l.referrers(f, field)
	case "tags":
		d.Tags = l.tags(f, field)
	}
}

func (l *nativeLoader) platforms(kv cfgfile.KeyValue, field string) ([]string, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.List {
		l.fail(line(kv), field, "must be a list of os/arch[/variant] (e.g. [linux/amd64, linux/arm64/v8]); [] keeps every platform")
		return nil, false
	}
	ps, ok := l.strings(kv, field)
	for i, p := range ps {
		if err := CheckPlatform(p); err != nil {
			l.fail(kv.Value.List[i].Line, fmt.Sprintf("%s[%d]", field, i), "%v", err)
			ok = false
		}
	}
	return ps, ok
}

// CheckPlatform validates one os/arch[/variant].
func CheckPlatform(p string) error {
	if !PlatformRE.MatchString(p) {
		return fmt.Errorf("platform %q must be os/arch or os/arch/variant in lower case (e.g. linux/arm64/v8)", p)
	}
	return nil
}

func (l *nativeLoader) referrers(kv cfgfile.KeyValue, field string) *Referrers {
	v := kv.Value
	if v != nil && v.Kind == cfgfile.Bool {
		if v.Bool {
			return &Referrers{}
		}
		return nil
	}
	if v == nil || v.Kind != cfgfile.Map {
		l.fail(line(kv), field, "must be true, false or a map with artifact-types:")
		return nil
	}
	r := &Referrers{}
	for _, f := range l.mapFields(kv, field, "artifact-types") {
		if ts, ok := l.strings(f, field+"."+f.Key); ok {
			for i, t := range ts {
				if t == "" || strings.ContainsAny(t, " \t\n") {
					l.fail(line(f), fmt.Sprintf("%s.%s[%d]", field, f.Key, i), "artifact type %q must be a media type (e.g. application/spdx+json)", t)
				}
			}
			r.ArtifactTypes = ts
		}
	}
	return r
}

func (l *nativeLoader) tags(kv cfgfile.KeyValue, field string) *TagFilter {
	tf := &TagFilter{}
	for _, f := range l.mapFields(kv, field, "include", "exclude", "semver", "latest") {
		ff := field + "." + f.Key
		switch f.Key {
		case "include", "exclude":
			exprs, ok := l.strings(f, ff)
			if !ok {
				continue
			}
			for _, e := range exprs {
				re, err := CompileTagPattern(e)
				if err != nil {
					l.fail(line(f), ff, "%v", err)
					continue
				}
				if f.Key == "include" {
					tf.Include = append(tf.Include, re)
				} else {
					tf.Exclude = append(tf.Exclude, re)
				}
			}
		case "semver":
			if s, ok := l.str(f, ff); ok {
				c, err := ParseSemverConstraint(s)
				if err != nil {
					l.fail(line(f), ff, "%v", err)
					continue
				}
				tf.Semver, tf.SemverText = c, s
			}
		case "latest":
			if n, ok := l.integer(f, ff, 1); ok {
				tf.Latest = n
			}
		}
	}
	return tf
}

func (l *nativeLoader) registries(kv cfgfile.KeyValue) []RegistrySettings {
	v := kv.Value
	if v == nil || v.Kind != cfgfile.Map {
		l.fail(line(kv), "registries", "must be a map from registry (or registry/namespace) to its settings")
		return nil
	}
	var out []RegistrySettings
	for _, e := range v.Map {
		field := fmt.Sprintf("registries[%s]", e.Key)
		r := RegistrySettings{Key: e.Key, Line: e.Line}
		reg, rest, _ := strings.Cut(strings.TrimRight(e.Key, "/"), "/")
		if !domainRE.MatchString(strings.ToLower(reg)) {
			l.fail(e.Line, field, "%q is not a registry host[:port] (optionally followed by /namespace)", e.Key)
		}
		for _, f := range l.mapFields(e, field, "insecure", "ca", "cert", "key", "rate", "max-conns", "auth") {
			ff := field + "." + f.Key
			switch f.Key {
			case "insecure":
				r.Insecure, _ = l.boolean(f, ff)
			case "ca":
				r.CA, _ = l.path(f, ff)
			case "cert":
				r.Cert, _ = l.path(f, ff)
			case "key":
				r.KeyFile, _ = l.path(f, ff)
			case "rate", "max-conns":
				if rest != "" {
					l.fail(f.Line, ff, "applies to a whole registry: give it under %q, not a namespace", reg)
					continue
				}
				if f.Key == "rate" {
					r.Rate, _ = l.number(f, ff)
				} else {
					r.MaxConns, _ = l.integer(f, ff, 1)
				}
			case "auth":
				l.auth(f, ff, &r)
			}
		}
		if (r.Cert == "") != (r.KeyFile == "") {
			l.fail(e.Line, field, "cert and key go together: give both or neither")
		}
		out = append(out, r)
	}
	return out
}

// auth reads credentials by reference: {entry: KEY} (an entry of the auth
// file) or {username-env: VAR, password-env: VAR}. Inline secrets are refused.
func (l *nativeLoader) auth(kv cfgfile.KeyValue, field string, r *RegistrySettings) {
	r.AuthLine = kv.Line
	v := kv.Value
	if v != nil && v.Kind == cfgfile.Map {
		for _, f := range v.Map {
			if f.Key == "username" || f.Key == "password" {
				l.fail(f.Line, field+"."+f.Key, "no inline credentials here: use %s-env: VARIABLE, or entry: naming an auth-file entry", f.Key)
			}
		}
	}
	for _, f := range l.mapFields(kv, field, "entry", "username-env", "password-env", "username", "password") {
		ff := field + "." + f.Key
		switch f.Key {
		case "entry":
			r.AuthEntry, _ = l.str(f, ff)
		case "username-env", "password-env":
			name, ok := l.str(f, ff)
			if !ok {
				continue
			}
			if !envNameRE.MatchString(name) {
				l.fail(line(f), ff, "%q is not an environment variable name", name)
				continue
			}
			val, set := lookupEnv(l.opt.LookupEnv, name)
			if !set {
				l.fail(line(f), ff, "environment variable %s is not set", name)
			}
			if f.Key == "username-env" {
				r.UsernameEnv, r.Username = name, val
			} else {
				r.PasswordEnv, r.Password = name, val
			}
		}
	}
	switch {
	case r.AuthEntry != "" && (r.UsernameEnv != "" || r.PasswordEnv != ""):
		l.fail(kv.Line, field, "give either entry: or username-env:/password-env:, not both")
	case r.AuthEntry == "" && (r.UsernameEnv == "") != (r.PasswordEnv == ""):
		l.fail(kv.Line, field, "username-env and password-env go together")
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func lookupEnv(lookup func(string) (string, bool), name string) (string, bool) {
	if lookup == nil {
		return os.LookupEnv(name)
	}
	return lookup(name)
}

// entry reads one item of sync:.
func (l *nativeLoader) entry(i int, n *cfgfile.Node) (Rule, bool) {
	field := fmt.Sprintf("sync[%d]", i)
	if n == nil || n.Kind != cfgfile.Map {
		ln := 0
		if n != nil {
			ln = n.Line
		}
		l.fail(ln, field, "must be a map with from: and to:")
		return Rule{}, false
	}
	var from, to *cfgfile.KeyValue
	var settings RuleDefaults
	tagsLine := 0
	bad := len(l.errs)
	for _, f := range l.mapFields(cfgfile.KeyValue{Key: field, Line: n.Line, Value: n}, field, "from", "to", "tags", "platforms", "platform-mode", "referrers") {
		switch f.Key {
		case "from":
			from = &f
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
		return Rule{}, false
	}
	src, ok := l.str(*from, field+".from")
	if !ok {
		return Rule{}, false
	}
	// The image-syncer machinery does the rest: from is a rule key and to
	// its value. Its errors are renamed to the native fields.
	r, errs := buildRule(l.file, cfgfile.KeyValue{Key: src, Line: line(*from), Value: to.Value}, l.opt)
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
		return Rule{}, false
	}
	r.Key = field
	r.Tags, r.Platforms, r.PlatformMode, r.Referrers = settings.Tags, settings.Platforms, settings.PlatformMode, settings.Referrers
	if r.Tags != nil && !r.NeedsTagList() {
		l.fail(tagsLine, field+".tags", "tag filters select among listed tags: from names %s, so drop tags: or the tag from from:", r.Source.Kind.describe())
		return Rule{}, false
	}
	return r, true
}

// OneOff is the rule of a one-off copy (`imagesync sync SRC DST…`): SRC in
// the rule-key syntax, each DST in the destination syntax. Errors name the
// argument.
func OneOff(src string, dsts []string, opt Options) (Rule, error) {
	items := make([]*cfgfile.Node, len(dsts))
	for i, d := range dsts {
		items[i] = &cfgfile.Node{Kind: cfgfile.String, Str: d}
	}
	r, errs := buildRule("command line", cfgfile.KeyValue{Key: src, Value: &cfgfile.Node{Kind: cfgfile.List, List: items}}, opt)
	if len(errs) > 0 {
		for _, e := range errs {
			if ce, ok := e.(*cfgfile.Error); ok {
				ce.File, ce.Key = "", ""
			}
		}
		return Rule{}, errs
	}
	r.File, r.Key = "", src
	return r, nil
}

func errLine(err error) int {
	if ce, ok := err.(*cfgfile.Error); ok {
		return ce.Line
	}
	return 0
}
