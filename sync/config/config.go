// Package config turns what a run is given (command-line flags, image-syncer's
// auth, images and legacy config files, imagesync's own config file, the
// one-off SRC DST arguments) into what it runs with: rules, credential files,
// per-host request limits and run settings, with the precedence between
// them in one place. The native config file's reader is here too
// (LoadNative; each sync entry built by rules.BuildRule, as an image-syncer
// key is). Strict loading refuses a whole file for one invalid rule; with
// Flags.SkipInvalid the rules concerned are set aside and reported instead.
// It also holds the one writer of the native config file (convert,
// --from-cluster --write-rules). Pure: no network, no engine; the CLI parses
// flags, calls Load and prints.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// Run are the run settings a config file's defaults: may set and a flag
// given on the command line overrides.
type Run struct {
	Proc, Retries, MaxConns int
	Rate                    float64
	// ProcGiven: Proc came from the command line or a file's defaults:
	// the user's hard cap on blob transfers. Otherwise the run learns how
	// many the link takes (starting at Proc, up to MaxConns).
	ProcGiven bool
}

// Filters are the filter flags: they apply to every rule that does not set
// its own (in a native config file, they replace its defaults:).
type Filters struct {
	Include, Exclude []string
	Semver           string
	Latest           int
	Platform         []string
	PlatformMode     string
	Referrers        bool
	ArtifactTypes    []string
	// Immutable are --immutable's regular expressions: tags that never move.
	Immutable []string
	// MinAge is --min-age: hold back what was first seen less than this ago.
	MinAge time.Duration
	// Prune and PruneForce are --prune and --prune-force.
	Prune, PruneForce bool
	// OS and Arch are --os/--arch, which cannot go with --platform.
	OS, Arch []string
}

// Flags are the inputs of a run as the command line gives them.
type Flags struct {
	Auth, Images, Config string // image-syncer's files
	File                 string // -f: imagesync's config file
	Refs                 []string
	Filters              Filters
	// DefaultRegistry and DefaultNamespace are where an empty destination goes.
	DefaultRegistry, DefaultNamespace string
	// Run holds the run flags' values (given or defaulted).
	Run Run
	// Explicit holds the long names of the flags given on the command line:
	// only those beat a config file's defaults.
	Explicit map[string]bool
	// SkipInvalid is --skip-invalid-rules: set invalid rules aside (into
	// Config.Skipped) instead of refusing the whole file.
	SkipInvalid bool
	// LookupEnv resolves $VAR in files; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Config is what a run runs with.
type Config struct {
	Rules []rules.Rule
	// Auth is the credentials file the rules' registries resolve in (an
	// auth file, the auth: of a legacy config, the registries: of a native
	// config merged over its auth-file), or nil.
	Auth *credentials.AuthFile
	// Hosts are per-host request limits (a native config's registries:),
	// keyed by the host the registry client reaches.
	Hosts map[string]client.HostPolicy
	// Run is the run settings: the flags, under a native config file's
	// defaults where the flag was not given on the command line.
	Run Run
	// FileTrustLedger is a native config's defaults.trust-ledger; nil when
	// not set.
	FileTrustLedger *bool
	// Every is a native config's every: (watch mode, sync --every); 0 when
	// not set.
	Every time.Duration
	// RuleFile names the file the rules come from (--images or --config),
	// for messages; "" for -f and one-off rules.
	RuleFile string
	// Warnings are to be logged before the run.
	Warnings []string
	// Skipped holds the errors of the rules loading set aside
	// (Flags.SkipInvalid).
	Skipped rules.ErrorList
	// SetAside is the skipping mode for the rest of the run (the engine's
	// Options.SetAside: rules only a listing shows to be invalid, and
	// destination conflicts): nil when strict.
	SetAside *rules.SetAside

	explicit map[string]bool
}

// TrustLedger is --trust-ledger (flag) when it was given on the command
// line, else the config file's defaults.trust-ledger, else the flag's
// default.
func (c *Config) TrustLedger(flag bool) bool {
	if !c.explicit["trust-ledger"] && c.FileTrustLedger != nil {
		return *c.FileTrustLedger
	}
	return flag
}

// ErrNothingToDo is Load's error when the flags name no rules at all (no
// file, no one-off SRC DST): the caller says what can be given.
var ErrNothingToDo = errors.New("no rules: give --images FILE (or --config FILE)")

// Load reads the files the flags name, or the one-off arguments, and
// applies the filter flags and the precedence of flags over file defaults.
// Every error is the user's to fix (a usage error); problems of files come
// back together.
func Load(f Flags) (*Config, error) {
	c := &Config{Run: f.Run, explicit: f.Explicit}
	c.Run.ProcGiven = c.Run.ProcGiven || f.Explicit["proc"]
	ropt := f.rulesOptions()
	if f.SkipInvalid {
		c.SetAside = &rules.SetAside{}
		ropt.SetAside = c.SetAside
	}
	var err error
	if f.File != "" || len(f.Refs) > 0 {
		err = c.loadNative(f, ropt)
	} else {
		err = c.loadLegacy(f, ropt)
	}
	if err != nil {
		return nil, err
	}
	if c.SetAside != nil {
		c.Skipped = append(rules.ErrorList(nil), c.SetAside.Errs...)
	}
	return c, nil
}

func (f Flags) rulesOptions() rules.Options {
	return rules.Options{DefaultRegistry: f.DefaultRegistry, DefaultNamespace: f.DefaultNamespace, LookupEnv: f.LookupEnv}
}

// RulesOptions are the options of the rule loader these flags give (for
// rules built elsewhere, such as from a cluster's images).
func (f Flags) RulesOptions() rules.Options { return f.rulesOptions() }

// loadLegacy reads image-syncer's files: --config, or --images with --auth.
func (c *Config) loadLegacy(f Flags, ropt rules.Options) error {
	var errs []error
	addAuth := func(af *credentials.AuthFile, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		c.Auth = af
		c.Warnings = append(c.Warnings, af.Warnings...)
	}
	var err error
	switch {
	case f.Config != "":
		c.RuleFile = f.Config
		if f.Auth != "" || f.Images != "" {
			c.Warnings = append(c.Warnings, "--config is given: --auth and --images are ignored")
		}
		l, err := ReadLegacy(f.Config, f.SkipInvalid)
		if err != nil {
			return err
		}
		if !l.IsMap() {
			// Worded as image-syncer users know the keys (ending in "images:").
			return errors.New(f.Config + ": the config file must be a map with auth: and images:")
		}
		if f.SkipInvalid {
			errs = append(errs, l.nonRuleDuplicates()...)
		}
		c.Warnings = append(c.Warnings, l.unknownKeys()...)
		addAuth(credentials.AuthFromNode(f.Config, l.Auth, f.LookupEnv))
		if !l.HasImages() {
			errs = append(errs, fmt.Errorf("%s: no images: key", f.Config))
		} else if c.Rules, err = rules.FromNode(f.Config, l.Images, ropt); err != nil {
			errs = append(errs, err)
		}
	case f.Images == "":
		return ErrNothingToDo
	default:
		c.RuleFile = f.Images
		if f.Auth != "" {
			addAuth(credentials.LoadAuthFile(f.Auth, f.LookupEnv))
		}
		if c.Rules, err = rules.LoadFile(f.Images, ropt); err != nil {
			if IsNativeFile(f.Images) {
				err = fmt.Errorf("%s is an imagesync config file (it has sync: entries): give it with -f %s", f.Images, f.Images)
			}
			errs = append(errs, err)
		}
	}
	if len(c.Rules) == 0 && c.SetAside != nil && len(c.SetAside.Errs) > 0 {
		errs = append(errs, c.SetAside.Errs) // no valid rule at all: nothing to run
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	d, err := f.Filters.Defaults(f.Explicit)
	if err != nil {
		return err
	}
	rules.ApplyDefaults(c.Rules, d)
	return nil
}
