package rules

import (
	"fmt"
	"regexp"
	"time"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// The settings of rules apart from their files: what a rule without its own
// inherits, the platform grammar, and the one-off rule of the command line.

// RuleDefaults are the per-rule settings a rule without its own inherits
// (from `defaults:` or from the one-off flags).
type RuleDefaults struct {
	Tags         *TagFilter
	Platforms    []string // nil: not set
	PlatformMode string
	Referrers    *Referrers
	Immutable    []*regexp.Regexp // nil: not set
	MinAge       time.Duration    // 0: not set
	Prune        *bool            // nil: not set
	PruneForce   bool
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
		if r.Immutable == nil && d.Immutable != nil {
			r.Immutable = d.Immutable
		}
		if r.MinAge == 0 {
			r.MinAge = d.MinAge
		}
		if d.Prune != nil && !r.pruneSet {
			r.Prune = *d.Prune
		}
		r.PruneForce = r.PruneForce || d.PruneForce
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
	if o.Immutable != nil {
		d.Immutable = o.Immutable
	}
	if o.MinAge != 0 {
		d.MinAge = o.MinAge
	}
	if o.Prune != nil {
		d.Prune = o.Prune
	}
	d.PruneForce = d.PruneForce || o.PruneForce
	return d
}

// PlatformRE is the form of one platform: os/arch[/variant].
var PlatformRE = regexp.MustCompile(`^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$`)

// PlatformModes are the values of platform-mode.
var PlatformModes = []string{"rewrite", "keep-index"}

// CheckPlatform validates one os/arch[/variant].
func CheckPlatform(p string) error {
	if !PlatformRE.MatchString(p) {
		return fmt.Errorf("platform %q must be os/arch or os/arch/variant in lower case (e.g. linux/arm64/v8)", p)
	}
	return nil
}

// OneOff is the rule of a one-off copy (`imagesync sync SRC DST…`): SRC in
// the rule-key syntax, each DST in the destination syntax. Errors name the
// argument.
func OneOff(src string, dsts []string, opt Options) (Rule, error) {
	items := make([]*cfgfile.Node, len(dsts))
	for i, d := range dsts {
		items[i] = &cfgfile.Node{Kind: cfgfile.String, Str: d}
	}
	r, errs := BuildRule("command line", cfgfile.KeyValue{Key: src, Value: &cfgfile.Node{Kind: cfgfile.List, List: items}}, opt)
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
