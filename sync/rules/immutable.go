package rules

import (
	"regexp"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// IsImmutable reports whether the rule declares tag immutable: one of its
// immutable patterns (Go regular expressions, searched like tag filters:
// anchor with ^ and $) matches it.
func (r *Rule) IsImmutable(tag string) bool {
	for _, re := range r.Immutable {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// immutable reads `immutable:`, a regular expression or a list of them.
func (l *nativeLoader) immutable(kv cfgfile.KeyValue, field string) []*regexp.Regexp {
	exprs, ok := l.strings(kv, field)
	if !ok {
		return nil
	}
	out := []*regexp.Regexp{}
	for _, e := range exprs {
		re, err := CompileTagPattern(e)
		if err != nil {
			l.fail(line(kv), field, "%v", err)
			continue
		}
		out = append(out, re)
	}
	return out
}
