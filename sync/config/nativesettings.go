package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

func (l *nativeLoader) defaults(kv cfgfile.KeyValue) NativeDefaults {
	var d NativeDefaults
	for _, f := range l.mapFields(kv, "defaults", "proc", "retries", "max-conns", "rate", "trust-ledger", "platforms", "platform-mode", "referrers", "tags", "immutable", "min-age", "prune") {
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
func (l *nativeLoader) ruleSetting(f cfgfile.KeyValue, field string, d *rules.RuleDefaults) {
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
	case "immutable":
		d.Immutable = l.immutable(f, field)
	case "min-age":
		d.MinAge = l.minAge(f, field)
	case "prune":
		if b, ok := l.boolean(f, field); ok {
			d.Prune = &b
		}
	}
}

func (l *nativeLoader) platforms(kv cfgfile.KeyValue, field string) ([]string, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.List {
		l.fail(line(kv), field, "must be a list of os/arch[/variant] (e.g. [linux/amd64, linux/arm64/v8]); [] keeps every platform")
		return nil, false
	}
	ps, ok := l.strings(kv, field)
	for i, p := range ps {
		if err := rules.CheckPlatform(p); err != nil {
			l.fail(kv.Value.List[i].Line, fmt.Sprintf("%s[%d]", field, i), "%v", err)
			ok = false
		}
	}
	return ps, ok
}

func (l *nativeLoader) referrers(kv cfgfile.KeyValue, field string) *rules.Referrers {
	v := kv.Value
	if v != nil && v.Kind == cfgfile.Bool {
		if v.Bool {
			return &rules.Referrers{}
		}
		return nil
	}
	if v == nil || v.Kind != cfgfile.Map {
		l.fail(line(kv), field, "must be true, false or a map with artifact-types:")
		return nil
	}
	r := &rules.Referrers{}
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

func (l *nativeLoader) tags(kv cfgfile.KeyValue, field string) *rules.TagFilter {
	tf := &rules.TagFilter{}
	for _, f := range l.mapFields(kv, field, "include", "exclude", "semver", "latest") {
		ff := field + "." + f.Key
		switch f.Key {
		case "include", "exclude":
			exprs, ok := l.strings(f, ff)
			if !ok {
				continue
			}
			for _, e := range exprs {
				re, err := rules.CompileTagPattern(e)
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
				c, err := rules.ParseSemverConstraint(s)
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
		if !rules.IsRegistryHost(strings.ToLower(reg)) {
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

// MinEvery is the shortest watch-mode interval (every:, --every).
const MinEvery = time.Second

// every reads `every:`, a Go duration of at least MinEvery.
func (l *nativeLoader) every(kv cfgfile.KeyValue) time.Duration {
	s, ok := l.str(kv, "every")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.fail(line(kv), "every", "must be a duration such as 30m, 1h or 1h30m, not %q", s)
	case d < MinEvery:
		l.fail(line(kv), "every", "must be at least %s, not %s", MinEvery, s)
	default:
		return d
	}
	return 0
}

// immutable reads `immutable:`, a regular expression or a list of them.
func (l *nativeLoader) immutable(kv cfgfile.KeyValue, field string) []*regexp.Regexp {
	exprs, ok := l.strings(kv, field)
	if !ok {
		return nil
	}
	out := []*regexp.Regexp{}
	for _, e := range exprs {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			l.fail(line(kv), field, "%v", err)
			continue
		}
		out = append(out, re)
	}
	return out
}

// minAge reads `min-age:`, a duration such as 30m or 2h.
func (l *nativeLoader) minAge(kv cfgfile.KeyValue, field string) time.Duration {
	s, ok := l.str(kv, field)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		l.fail(line(kv), field, "must be a positive duration such as 30m, 2h or 90s, not %q", s)
		return 0
	}
	return d
}
