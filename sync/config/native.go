package config

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

// loadNative loads a config file (-f) or the one-off arguments.
func (c *Config) loadNative(f Flags, ropt rules.Options) error {
	switch {
	case f.Images != "" || f.Config != "":
		what := "-f/--file"
		if f.File == "" {
			what = "a one-off SRC DST"
		}
		return fmt.Errorf("%s and --images/--config cannot go together: give one", what)
	case f.File != "" && len(f.Refs) > 0:
		return errors.New("-f/--file and a one-off SRC DST cannot go together: give one")
	}
	flags, err := f.Filters.Defaults(f.Explicit)
	if err != nil {
		return err
	}
	var authFile *credentials.AuthFile
	if f.Auth != "" {
		if authFile, err = credentials.LoadAuthFile(f.Auth, f.LookupEnv); err != nil {
			return err
		}
		c.Warnings = append(c.Warnings, authFile.Warnings...)
	}
	if f.File == "" {
		r, err := oneOff(f, ropt)
		if err != nil {
			return err
		}
		if flags.Tags != nil && !r.NeedsTagList() {
			return errors.New("tag filters (--include, --exclude, --semver, --latest) select among listed tags: give SRC without a tag or digest")
		}
		c.Rules = []rules.Rule{r}
		rules.ApplyDefaults(c.Rules, flags)
		c.Auth = authFile
		return nil
	}

	cfg, err := LoadNative(f.File, ropt)
	if err != nil {
		return err
	}
	if cfg.AuthFile != "" {
		if authFile != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: auth-file is replaced by --auth %s", cfg.File, cfg.AuthFileLine, f.Auth))
		} else {
			if authFile, err = LoadAuthOrLegacy(cfg.AuthFile, f.LookupEnv); err != nil {
				return err
			}
			c.Warnings = append(c.Warnings, authFile.Warnings...)
		}
	}
	if c.Auth, c.Hosts, err = registrySettings(cfg, authFile); err != nil {
		return err
	}

	// Run settings: a flag given on the command line beats the file's defaults.
	d := cfg.Defaults
	if d.Proc != nil && !f.Explicit["proc"] {
		c.Run.Proc, c.Run.ProcGiven = *d.Proc, true
	}
	if d.Retries != nil && !f.Explicit["retries"] {
		c.Run.Retries = *d.Retries
	}
	if d.MaxConns != nil && !f.Explicit["max-conns"] {
		c.Run.MaxConns = *d.MaxConns
	}
	if d.Rate != nil && !f.Explicit["rate"] {
		c.Run.Rate = *d.Rate
	}
	c.FileTrustLedger = d.TrustLedger
	c.Every = cfg.Every
	c.Rules = cfg.Rules
	rules.ApplyDefaults(c.Rules, d.Rule.Merge(flags))
	return nil
}

// oneOff is the rule of a one-off SRC DST [DST…].
func oneOff(f Flags, ropt rules.Options) (rules.Rule, error) {
	if len(f.Refs) < 2 {
		if ext := strings.ToLower(filepath.Ext(f.Refs[0])); ext == ".yaml" || ext == ".yml" || ext == ".json" {
			return rules.Rule{}, fmt.Errorf("%q looks like a file: give a rule file as --images %s, an imagesync config file as -f %s (a one-off copy takes SRC DST)", f.Refs[0], f.Refs[0], f.Refs[0])
		}
		return rules.Rule{}, fmt.Errorf("a one-off copy takes SRC DST [DST…]: got %q alone (or give --images FILE or -f FILE)", f.Refs[0])
	}
	return rules.OneOff(f.Refs[0], f.Refs[1:], ropt)
}

// registrySettings turns `registries:` into one auth file (the auth file's
// entries, overlaid with the settings; credentials by reference resolved)
// and the per-host request limits.
func registrySettings(cfg *Native, af *credentials.AuthFile) (*credentials.AuthFile, map[string]client.HostPolicy, error) {
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
