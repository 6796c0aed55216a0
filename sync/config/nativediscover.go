package config

import (
	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

// repositories reads a sync entry's `repositories:`: a list of repository
// names or patterns (the include list), or a map with include: and
// exclude:.
func (l *nativeLoader) repositories(kv cfgfile.KeyValue, field string) (include, exclude []string, ok bool) {
	if kv.Value != nil && kv.Value.Kind == cfgfile.Map {
		ok = true
		for _, f := range l.mapFields(kv, field, "include", "exclude") {
			v, good := l.strings(f, field+"."+f.Key)
			ok = ok && good
			if f.Key == "include" {
				include = v
			} else {
				exclude = v
			}
		}
		return include, exclude, ok
	}
	include, ok = l.strings(kv, field)
	return include, nil, ok
}

// applyRepositories narrows a wildcard source to the entry's
// repositories: patterns.
func (l *nativeLoader) applyRepositories(r *rules.Rule, kv cfgfile.KeyValue, field string) bool {
	include, exclude, ok := l.repositories(kv, field)
	if !ok {
		return false
	}
	if r.Source.Repos == nil {
		l.fail(kv.Line, field, "repositories: picks among the repositories of a wildcard source: write from: as REGISTRY/** or REGISTRY/team/*")
		return false
	}
	if err := r.Source.Repos.SetRepositories(include, exclude); err != nil {
		l.fail(line(kv), field, "%v", err)
		return false
	}
	return true
}
