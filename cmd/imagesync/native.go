package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/registry/dockerhub"
	"github.com/imagesync/imagesync/sync/rules"
)

// Selection are the one-off arguments and the filter flags. The flags apply
// to every rule that does not set its own (in a config file, they replace
// its defaults:).
type Selection struct {
	Refs []string `arg:"" optional:"" name:"image" help:"One-off copy without a file: SRC DST [DST…] (SRC as a rule key: repo, repo:tag, repo:t1,t2, repo@digest)."`

	Include       []string `placeholder:"REGEX" sep:"none" help:"Keep only tags in which one of these regular expressions matches (anchor with ^ and $; repeatable)."`
	Exclude       []string `placeholder:"REGEX" sep:"none" help:"Drop tags in which one of these regular expressions matches (anchor with ^ and $; repeatable)."`
	Semver        string   `placeholder:"CONSTRAINT" help:"Keep only tags that are versions inside the constraint, e.g. '>=1.25.0 <2'."`
	Latest        int      `placeholder:"N" help:"After the other tag filters, keep the N highest versions."`
	Platform      []string `placeholder:"OS/ARCH[/VARIANT]" help:"Keep only these platforms of multi-platform images (repeatable or comma-separated)."`
	PlatformMode  string   `name:"platform-mode" enum:"rewrite,keep-index" default:"rewrite" help:"With a platform filter: rewrite the index with the kept children (new digest), or keep-index: copy only the kept children and push the original index (digest kept)."`
	Referrers     bool     `help:"Copy the referrers of every image (signatures, SBOMs, attestations: the OCI referrers API, its tag fallback, cosign's tags), after it."`
	ArtifactTypes []string `name:"artifact-type" placeholder:"TYPE" help:"With --referrers: only referrers of these artifact types (repeatable)."`
}

// flagDefaults turns the filter flags into rule defaults.
func (in *Inputs) flagDefaults(rc *runContext) (rules.RuleDefaults, error) {
	var d rules.RuleDefaults
	var errs []error
	tf := &rules.TagFilter{Latest: in.Latest}
	if in.Latest < 0 {
		errs = append(errs, fmt.Errorf("--latest %d: must be 1 or more", in.Latest))
	}
	for _, e := range in.Include {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("--include: %v", err))
		}
		tf.Include = append(tf.Include, re)
	}
	for _, e := range in.Exclude {
		re, err := rules.CompileTagPattern(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("--exclude: %v", err))
		}
		tf.Exclude = append(tf.Exclude, re)
	}
	if in.Semver != "" {
		c, err := rules.ParseSemverConstraint(in.Semver)
		if err != nil {
			errs = append(errs, fmt.Errorf("--semver: %v", err))
		}
		tf.Semver, tf.SemverText = c, in.Semver
	}
	if !tf.Empty() {
		d.Tags = tf
	}
	if len(in.Platform) > 0 && (len(in.OS) > 0 || len(in.Arch) > 0) {
		errs = append(errs, errors.New("--platform and --os/--arch cannot go together: give os/arch[/variant] values to --platform"))
	}
	if len(in.Platform) > 0 {
		d.Platforms = []string{}
		for _, v := range in.Platform {
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
	if rc.explicit["platform-mode"] {
		d.PlatformMode = in.PlatformMode
	}
	if in.Referrers {
		d.Referrers = &rules.Referrers{ArtifactTypes: in.ArtifactTypes}
	} else if len(in.ArtifactTypes) > 0 {
		errs = append(errs, errors.New("--artifact-type filters referrers: it needs --referrers"))
	}
	if len(errs) > 0 {
		return d, &exitError{code: exitUsage, err: errors.Join(errs...)}
	}
	return d, nil
}

// loadNative loads a config file (-f) or the one-off arguments.
func (in *Inputs) loadNative(rc *runContext, s *session, ropt rules.Options) (warnings []string, skipped rules.ErrorList, err error) {
	switch {
	case in.Images != "" || in.Config != "":
		what := "-f/--file"
		if in.File == "" {
			what = "a one-off SRC DST"
		}
		return nil, nil, usageError("%s and --images/--config cannot go together: give one", what)
	case in.File != "" && len(in.Refs) > 0:
		return nil, nil, usageError("-f/--file and a one-off SRC DST cannot go together: give one")
	}
	flags, err := in.flagDefaults(rc)
	if err != nil {
		return nil, nil, err
	}
	var authFile *credentials.AuthFile
	if in.Auth != "" {
		if authFile, err = credentials.LoadAuthFile(in.Auth, rc.env.lookup); err != nil {
			return nil, nil, &exitError{code: exitUsage, err: err}
		}
		warnings = append(warnings, authFile.Warnings...)
	}
	if in.File == "" {
		if len(in.Refs) < 2 {
			if ext := strings.ToLower(filepath.Ext(in.Refs[0])); ext == ".yaml" || ext == ".yml" || ext == ".json" {
				return nil, nil, usageError("%q looks like a file: give a rule file as --images %s, an imagesync config file as -f %s (a one-off copy takes SRC DST)", in.Refs[0], in.Refs[0], in.Refs[0])
			}
			return nil, nil, usageError("a one-off copy takes SRC DST [DST…]: got %q alone (or give --images FILE or -f FILE)", in.Refs[0])
		}
		r, err := rules.OneOff(in.Refs[0], in.Refs[1:], ropt)
		if err != nil {
			return nil, nil, usageError("%v", err)
		}
		if flags.Tags != nil && !r.NeedsTagList() {
			return nil, nil, usageError("tag filters (--include, --exclude, --semver, --latest) select among listed tags: give SRC without a tag or digest")
		}
		s.rules = []rules.Rule{r}
		rules.ApplyDefaults(s.rules, flags)
		if authFile != nil {
			s.keychain.AddFile(authFile)
		}
		return warnings, skipped, nil
	}

	var cfg *rules.Native
	if in.SkipInvalidRules {
		cfg, skipped, err = rules.LoadNativeSkipping(in.File, ropt)
	} else {
		cfg, err = rules.LoadNative(in.File, ropt)
	}
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	if cfg.AuthFile != "" {
		if authFile != nil {
			warnings = append(warnings, fmt.Sprintf("%s:%d: auth-file is replaced by --auth %s", cfg.File, cfg.AuthFileLine, in.Auth))
		} else {
			if authFile, err = loadAuthOrLegacy(cfg.AuthFile, rc.env.lookup); err != nil {
				return nil, nil, &exitError{code: exitUsage, err: err}
			}
			warnings = append(warnings, authFile.Warnings...)
		}
	}
	merged, hosts, err := registrySettings(cfg, authFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	s.keychain.AddFile(merged)
	s.hosts = hosts

	// Run settings: an explicit flag beats the file's defaults.
	d := cfg.Defaults
	if d.Proc != nil && !rc.explicit["proc"] {
		in.Proc = *d.Proc
	}
	if d.Retries != nil && !rc.explicit["retries"] {
		in.Retries = *d.Retries
	}
	if d.MaxConns != nil && !rc.explicit["max-conns"] {
		in.MaxConns = *d.MaxConns
	}
	if d.Rate != nil && !rc.explicit["rate"] {
		in.Rate = *d.Rate
	}
	s.trustLedger = d.TrustLedger
	s.rules = cfg.Rules
	rules.ApplyDefaults(s.rules, d.Rule.Merge(flags))
	return warnings, skipped, nil
}

// registrySettings turns `registries:` into one auth file (the auth file's
// entries, overlaid with the settings; credentials by reference resolved)
// and the per-host request limits.
func registrySettings(cfg *rules.Native, af *credentials.AuthFile) (*credentials.AuthFile, map[string]client.HostPolicy, error) {
	hosts := map[string]client.HostPolicy{}
	if len(cfg.Registries) == 0 {
		if af == nil {
			af = &credentials.AuthFile{File: cfg.File}
		}
		return af, hosts, nil
	}
	out := &credentials.AuthFile{File: cfg.File}
	if af != nil {
		out.Entries = append(out.Entries, af.Entries...)
	}
	var errs []error
	for _, r := range cfg.Registries {
		field := fmt.Sprintf("registries[%s]", r.Key)
		key, err := credentials.NormalizeKey(r.Key)
		if err != nil {
			errs = append(errs, &cfgfile.Error{File: cfg.File, Line: r.Line, Key: field, Msg: err.Error()})
			continue
		}
		e := credentials.Entry{Key: key, Raw: r.Key, Line: r.Line}
		idx := -1
		for i := range out.Entries {
			if out.Entries[i].Key == key {
				idx = i
				e = out.Entries[i]
				break
			}
		}
		if idx < 0 && af != nil {
			// A new, more specific key keeps the credentials the auth file has for it.
			reg, repo, _ := strings.Cut(key, "/")
			if m, ok := af.Match(reg, repo); ok {
				e.Username, e.Password = m.Username, m.Password
			}
		}
		if r.Insecure {
			e.Insecure = true
		}
		if r.CA != "" {
			e.CA = r.CA
		}
		if r.Cert != "" {
			e.Cert, e.KeyFile = r.Cert, r.KeyFile
		}
		switch {
		case r.AuthEntry != "":
			ref, err := credentials.NormalizeKey(r.AuthEntry)
			var found *credentials.Entry
			if err == nil && af != nil {
				for i := range af.Entries {
					if af.Entries[i].Key == ref {
						found = &af.Entries[i]
					}
				}
			}
			switch {
			case af == nil:
				errs = append(errs, &cfgfile.Error{File: cfg.File, Line: r.AuthLine, Key: field + ".auth.entry", Msg: "names an auth-file entry, but there is no auth-file: (nor --auth)"})
				continue
			case found == nil:
				errs = append(errs, &cfgfile.Error{File: cfg.File, Line: r.AuthLine, Key: field + ".auth.entry", Msg: fmt.Sprintf("auth file %s has no entry %q", af.File, r.AuthEntry)})
				continue
			}
			e.Username, e.Password = found.Username, found.Password
		case r.UsernameEnv != "":
			e.Username, e.Password = r.Username, r.Password
		}
		if idx >= 0 {
			out.Entries[idx] = e
		} else {
			out.Entries = append(out.Entries, e)
		}
		if r.Rate > 0 || r.MaxConns > 0 {
			host := key
			if host == dockerhub.Registry {
				host = dockerhub.Host // as the registry client keys its hosts
			}
			hosts[host] = client.HostPolicy{Rate: r.Rate, MaxConns: r.MaxConns}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	sort.SliceStable(out.Entries, func(i, j int) bool { return len(out.Entries[i].Key) > len(out.Entries[j].Key) })
	return out, hosts, nil
}

// loadAuthOrLegacy reads an auth file, or the auth: part of image-syncer's
// legacy config file (a map with auth: and images:).
func loadAuthOrLegacy(path string, lookup func(string) (string, bool)) (*credentials.AuthFile, error) {
	n, err := cfgfile.Load(path)
	if err != nil {
		return nil, err
	}
	if _, hasImages := n.Get("images"); hasImages {
		if a, ok := n.Get("auth"); ok {
			return credentials.AuthFromNode(path, a, lookup)
		}
	}
	return credentials.AuthFromNode(path, n, lookup)
}
