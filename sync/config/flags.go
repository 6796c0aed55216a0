package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/sync/rules"
)

// Defaults turns the filter flags into rule defaults. explicit holds the
// flags given on the command line (--platform-mode applies only then, so a
// file's own platform-mode is not replaced by the flag's default).
func (f Filters) Defaults(explicit map[string]bool) (rules.RuleDefaults, error) {
	var d rules.RuleDefaults
	var errs []error
	tf := &rules.TagFilter{Latest: f.Latest}
	if f.Latest < 0 {
		errs = append(errs, fmt.Errorf("--latest %d: must be 1 or more", f.Latest))
	}
	for _, e := range f.Include {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("--include: %v", err))
		}
		tf.Include = append(tf.Include, re)
	}
	for _, e := range f.Exclude {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("--exclude: %v", err))
		}
		tf.Exclude = append(tf.Exclude, re)
	}
	if f.Semver != "" {
		c, err := rules.ParseSemverConstraint(f.Semver)
		if err != nil {
			errs = append(errs, fmt.Errorf("--semver: %v", err))
		}
		tf.Semver, tf.SemverText = c, f.Semver
	}
	if !tf.Empty() {
		d.Tags = tf
	}
	if len(f.Platform) > 0 && (len(f.OS) > 0 || len(f.Arch) > 0) {
		errs = append(errs, errors.New("--platform and --os/--arch cannot go together: give os/arch[/variant] values to --platform"))
	}
	if len(f.Platform) > 0 {
		d.Platforms = []string{}
		for _, v := range f.Platform {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				if err := rules.CheckPlatform(p); err != nil {
					errs = append(errs, fmt.Errorf("--platform: %v", err))
				}
				d.Platforms = append(d.Platforms, p)
			}
		}
	}
	if explicit["platform-mode"] {
		d.PlatformMode = f.PlatformMode
	}
	if f.MinAge < 0 {
		errs = append(errs, fmt.Errorf("--min-age %s: must be positive", f.MinAge))
	}
	d.MinAge = f.MinAge
	if f.Prune {
		d.Prune = &f.Prune
	}
	d.PruneForce = f.PruneForce
	if f.PruneForce && !f.Prune {
		errs = append(errs, errors.New("--prune-force lifts a bound of --prune: it needs --prune"))
	}
	for _, e := range f.Immutable {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("--immutable: %v", err))
		}
		d.Immutable = append(d.Immutable, re)
	}
	if f.Referrers {
		d.Referrers = &rules.Referrers{ArtifactTypes: f.ArtifactTypes}
	} else if len(f.ArtifactTypes) > 0 {
		errs = append(errs, errors.New("--artifact-type filters referrers: it needs --referrers"))
	}
	if len(errs) > 0 {
		return d, errors.Join(errs...)
	}
	return d, nil
}
