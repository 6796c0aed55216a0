package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) (string, bool) { return "", false }

// TestLoadErrors: each way of getting the inputs wrong is an error that
// names the flag or the file, before anything runs.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	images := write(t, dir, "images.yaml", "127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	native := write(t, dir, "imagesync.yaml", "sync:\n  - {from: 127.0.0.1:1/a/b:1, to: 127.0.0.1:1/c/d}\n")
	list := write(t, dir, "list.yaml", "- a\n- b\n")
	noImages := write(t, dir, "noimages.yaml", "auth: {}\n")
	for _, tc := range []struct {
		name  string
		flags Flags
		want  []string
	}{
		{"nothing", Flags{}, []string{ErrNothingToDo.Error()}},
		{"native as images", Flags{Images: native}, []string{native + " is an imagesync config file (it has sync: entries): give it with -f " + native}},
		{"config not a map", Flags{Config: list}, []string{list + ": the config file must be a map with auth: and images:"}},
		{"config without images", Flags{Config: noImages}, []string{noImages + ": no images: key"}},
		{"-f with --images", Flags{File: native, Images: images}, []string{"-f/--file and --images/--config cannot go together"}},
		{"one-off with --config", Flags{Refs: []string{"a", "b"}, Config: images}, []string{"a one-off SRC DST and --images/--config cannot go together"}},
		{"-f with one-off", Flags{File: native, Refs: []string{"a", "b"}}, []string{"-f/--file and a one-off SRC DST cannot go together"}},
		{"one-off alone", Flags{Refs: []string{"nginx"}}, []string{`a one-off copy takes SRC DST [DST…]: got "nginx" alone`}},
		{"one-off file", Flags{Refs: []string{"x.yaml"}}, []string{`"x.yaml" looks like a file: give a rule file as --images x.yaml`}},
		{"tag filter on a tag", Flags{Refs: []string{"127.0.0.1:1/a:1", "127.0.0.1:1/b"}, Filters: Filters{Latest: 2}}, []string{"tag filters (--include, --exclude, --semver, --latest) select among listed tags"}},
		{"filters", Flags{Images: images, Filters: Filters{Latest: -1, Include: []string{"("}, Platform: []string{"linux"}, OS: []string{"linux"}, ArtifactTypes: []string{"x"}}}, []string{
			"--latest -1: must be 1 or more", "--include:", "--platform and --os/--arch cannot go together", "--platform:", "--artifact-type filters referrers: it needs --referrers"}},
	} {
		tc.flags.LookupEnv = noEnv
		_, err := Load(tc.flags)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
	}
}

// TestLegacyConfig: image-syncer's --config file, read by the one reader
// (sync, a native file's auth-file:, convert).
func TestLegacyConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "config.yaml", `auth:
  127.0.0.1:1: {username: u, password: p}
images:
  127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d
  127.0.0.1:1/a/b:2: 127.0.0.1:1/c/d
  127.0.0.1:1/a/b:1: 127.0.0.1:1/c/e
mode: fast
`)
	c, err := Load(Flags{Config: cfg, Images: "ignored.yaml", LookupEnv: noEnv, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rules) != 1 || c.Rules[0].Key != "127.0.0.1:1/a/b:2" {
		t.Errorf("rules %v, want the one rule whose key is not repeated", c.Rules)
	}
	if len(c.Skipped) != 2 || !strings.Contains(c.Skipped[0].Error(), "config.yaml:4") {
		t.Errorf("skipped %v, want both rules under the repeated key", c.Skipped)
	}
	warnings := strings.Join(c.Warnings, "\n")
	for _, w := range []string{"--config is given: --auth and --images are ignored", `config.yaml:7: unknown top-level key "mode" ignored`} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings %q lack %q", warnings, w)
		}
	}
	if c.RuleFile != cfg || c.Auth == nil || len(c.Auth.Entries) != 1 || c.Auth.Entries[0].Username != "u" {
		t.Errorf("rule file %q, auth %+v", c.RuleFile, c.Auth)
	}
	if _, err := Load(Flags{Config: cfg, LookupEnv: noEnv}); err == nil || !strings.Contains(err.Error(), "config.yaml:6") {
		t.Errorf("strict: %v, want the repeated key refused", err)
	}
	// A repeated key outside images: stays fatal when skipping.
	dupAuth := write(t, dir, "config2.yaml", "auth:\n  127.0.0.1:1: {username: u, password: p, username: v}\nimages:\n  127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	if _, err := Load(Flags{Config: dupAuth, LookupEnv: noEnv, SkipInvalid: true}); err == nil || !strings.Contains(err.Error(), "config2.yaml:2") {
		t.Errorf("repeated auth field: %v, want it refused", err)
	}
	// The auth: part of a legacy config serves as an auth file.
	legacy := write(t, dir, "config3.yaml", "auth:\n  127.0.0.1:1: {username: u, password: p}\nimages:\n  127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	af, err := LoadAuthOrLegacy(legacy, noEnv)
	if err != nil || len(af.Entries) != 1 || af.Entries[0].Key != "127.0.0.1:1" {
		t.Errorf("LoadAuthOrLegacy(legacy) = %+v, %v", af, err)
	}
	plain := write(t, dir, "auth.yaml", "127.0.0.1:2: {username: x, password: y}\n")
	if af, err := LoadAuthOrLegacy(plain, noEnv); err != nil || len(af.Entries) != 1 || af.Entries[0].Key != "127.0.0.1:2" {
		t.Errorf("LoadAuthOrLegacy(auth file) = %+v, %v", af, err)
	}
}

// TestPrecedence: a flag given on the command line beats the native file's
// defaults, which beat the flag's default; registries: limits are keyed by
// the host the client reaches (Docker Hub under any name: index.docker.io).
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "auth.yaml", "127.0.0.1:1: {username: u, password: p}\n")
	file := write(t, dir, "imagesync.yaml", `auth-file: auth.yaml
defaults: {proc: 7, retries: 4, max-conns: 3, rate: 9, trust-ledger: true, platform-mode: keep-index, platforms: [linux/arm64]}
registries:
  127.0.0.1:1: {rate: 2, max-conns: 1, insecure: true}
  registry.hub.docker.com: {rate: 5}
sync:
  - {from: 127.0.0.1:1/a/b:1, to: 127.0.0.1:1/c/d}
`)
	explicit := map[string]bool{"retries": true, "rate": true}
	f := Flags{File: file, Run: Run{Proc: 5, Retries: 2, MaxConns: 32, Rate: 0}, Explicit: explicit, LookupEnv: noEnv,
		Filters: Filters{PlatformMode: "rewrite", Platform: []string{"linux/amd64"}}}
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Run{Proc: 7, Retries: 2, MaxConns: 3, Rate: 0, ProcGiven: true}); c.Run != want { // proc from the file: the user's cap
		t.Errorf("run %+v, want %+v", c.Run, want)
	}
	if h := c.Hosts["127.0.0.1:1"]; h.Rate != 2 || h.MaxConns != 1 {
		t.Errorf("host policy %+v", h)
	}
	if h := c.Hosts["index.docker.io"]; h.Rate != 5 || len(c.Hosts) != 2 {
		t.Errorf("Docker Hub's host policy %+v (hosts %v)", h, c.Hosts)
	}
	if len(c.Auth.Entries) != 2 || c.Auth.Entries[0].Username != "u" || !c.Auth.Entries[0].Insecure {
		t.Errorf("auth %+v: want the auth file's entry with the registry's settings", c.Auth.Entries)
	}
	// --platform given replaces the file's platforms; --platform-mode's
	// default does not replace the file's.
	if r := c.Rules[0]; len(r.Platforms) != 1 || r.Platforms[0] != "linux/amd64" || r.PlatformMode != "keep-index" {
		t.Errorf("rule platforms %v mode %q", r.Platforms, r.PlatformMode)
	}
	if !c.TrustLedger(false) {
		t.Error("defaults.trust-ledger: true is not in effect")
	}
	explicit["trust-ledger"] = true // --trust-ledger=false on the command line
	if c.TrustLedger(false) {
		t.Error("an explicit --trust-ledger=false lost to the file")
	}
	// --auth replaces auth-file:, with a warning.
	other := write(t, dir, "other.yaml", "127.0.0.1:3: {username: o, password: q}\n")
	f.Auth = other
	if c, err = Load(f); err != nil || !strings.Contains(strings.Join(c.Warnings, "\n"), "auth-file is replaced by --auth "+other) {
		t.Errorf("--auth over auth-file: %v, warnings %q", err, c.Warnings)
	}
}

// TestProcGiven: --proc on the command line or proc: in a file's defaults
// is the user's cap on blob transfers; otherwise the run learns them.
func TestProcGiven(t *testing.T) {
	dir := t.TempDir()
	withProc := write(t, dir, "with.yaml", "defaults: {proc: 3}\nsync:\n  - {from: 127.0.0.1:1/a/b:1, to: 127.0.0.1:1/c/d}\n")
	without := write(t, dir, "without.yaml", "sync:\n  - {from: 127.0.0.1:1/a/b:1, to: 127.0.0.1:1/c/d}\n")
	for _, tc := range []struct {
		name     string
		file     string
		explicit bool
		want     bool
	}{
		{"defaulted", without, false, false},
		{"flag", without, true, true},
		{"file defaults", withProc, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Flags{File: tc.file, Run: Run{Proc: 5, Retries: 2, MaxConns: 32}, Explicit: map[string]bool{"proc": tc.explicit}, LookupEnv: noEnv}
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.Run.ProcGiven != tc.want {
				t.Errorf("ProcGiven %v, want %v (run %+v)", c.Run.ProcGiven, tc.want, c.Run)
			}
		})
	}
}
