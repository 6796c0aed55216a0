package rules

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
