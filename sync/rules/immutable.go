package rules

import (
	"regexp"
	"time"

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
