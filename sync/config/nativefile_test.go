package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

func writeNative(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "imagesync.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadNative(t *testing.T) {
	p := writeNative(t, `defaults:
  proc: 8
  retries: 0
  rate: 2.5
  platforms: [linux/amd64, linux/arm64]
  referrers: true
registries:
  harbor.example.com: {ca: ./ca.crt, rate: 20, max-conns: 4, auth: {username-env: U, password-env: P}}
sync:
  - from: docker.io/library/nginx
    to: [harbor.example.com/mirror/nginx]
    tags:
      include: ['^1\.2[0-9]']
      exclude: '-alpine$'
      semver: '>=1.25.0 <2'
      latest: 5
    platforms: []
  - from: quay.io/coreos/etcd:v3.5.0
    to: harbor.example.com/mirror/etcd
    platform-mode: keep-index
    referrers: {artifact-types: [application/spdx+json]}
`)
	cfg, err := LoadNative(p, rules.Options{LookupEnv: env(map[string]string{"U": "robot", "P": "s3cret"})})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Defaults
	if *d.Proc != 8 || *d.Retries != 0 || *d.Rate != 2.5 || d.MaxConns != nil || len(d.Rule.Platforms) != 2 || d.Rule.Referrers == nil {
		t.Errorf("defaults %+v", d)
	}
	if len(cfg.Registries) != 1 {
		t.Fatalf("registries %+v", cfg.Registries)
	}
	reg := cfg.Registries[0]
	if reg.Rate != 20 || reg.MaxConns != 4 || reg.Username != "robot" || reg.Password != "s3cret" || filepath.Base(reg.CA) != "ca.crt" || !filepath.IsAbs(reg.CA) {
		t.Errorf("registry %+v", reg)
	}
	if len(cfg.Rules) != 2 {
		t.Fatalf("rules %d", len(cfg.Rules))
	}
	r0, r1 := cfg.Rules[0], cfg.Rules[1]
	if r0.Source.Kind != rules.AllTags || r0.Tags == nil || r0.Tags.Latest != 5 || len(r0.Tags.Exclude) != 1 || r0.Platforms == nil || len(r0.Platforms) != 0 || r0.Referrers != nil {
		t.Errorf("rule 0 %+v", r0)
	}
	if r1.PlatformMode != "keep-index" || r1.Referrers == nil || !r1.Referrers.Wants("application/spdx+json") || r1.Referrers.Wants("x/y") {
		t.Errorf("rule 1 %+v", r1)
	}
	rules.ApplyDefaults(cfg.Rules, d.Rule)
	if len(cfg.Rules[0].Platforms) != 0 || cfg.Rules[0].Referrers == nil || len(cfg.Rules[1].Platforms) != 2 {
		t.Errorf("defaults applied: %+v / %+v", cfg.Rules[0], cfg.Rules[1])
	}
}

// TestLoadNativeErrors: every error names the file, the line and the field.
func TestLoadNativeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string // "LINE: key \"FIELD\"" fragments, in order
	}{
		{"no sync", "defaults: {proc: 2}\n", []string{`:1: key "sync": missing`}},
		{"unknown top-level", "sync:\n  - {from: a.io/x, to: b.io/x}\nsynk: []\n", []string{`:3: key "synk": unknown field`}},
		{"bad types", "defaults:\n  proc: 0\n  retries: many\n  rate: -1\nsync:\n  - {from: a.io/x, to: b.io/x}\n",
			[]string{`:2: key "defaults.proc": must be a whole number of at least 1`, `:3: key "defaults.retries": must be a whole number`, `:4: key "defaults.rate": must be a number above 0`}},
		{"entry fields", "sync:\n  - from: a.io/x\n    to: b.io/x\n    tags:\n      semver: 'not a version'\n      latest: 0\n      include: ['(']\n    platforms: [linux]\n    platform-mode: sparse\n    colour: red\n",
			[]string{`:5: key "sync[0].tags.semver": bad semver constraint`, `:6: key "sync[0].tags.latest"`, `:7: key "sync[0].tags.include": bad tag expression`,
				`:8: key "sync[0].platforms[0]": platform "linux"`, `:9: key "sync[0].platform-mode": must be rewrite or keep-index`, `:10: key "sync[0].colour": unknown field`}},
		{"missing from/to", "sync:\n  - to: b.io/x\n  - from: a.io/x\n", []string{`:2: key "sync[0].from": missing`, `:3: key "sync[1].to": missing`}},
		{"bad references", "sync:\n  - from: a.io/X/y\n    to: b.io/x\n  - from: a.io/x\n    to: ['b.io/x:a,b']\n",
			[]string{`:2: key "sync[0].from": invalid repository path`, `:5: key "sync[1].to": destination "b.io/x:a,b" lists 2 tags`}},
		{"tags on a named tag", "sync:\n  - from: a.io/x:1.0\n    to: b.io/x\n    tags: {latest: 1}\n", []string{`:4: key "sync[0].tags": tag filters select among listed tags`}},
		{"inline secret", "registries:\n  r.io:\n    auth: {username: me, password: hunter2}\nsync:\n  - {from: a.io/x, to: r.io/x}\n",
			[]string{`:3: key "registries[r.io].auth.username": no inline credentials`, `:3: key "registries[r.io].auth.password": no inline credentials`}},
		{"registry settings", "registries:\n  r.io/ns:\n    rate: 5\n    ca: ./missing.crt\n    auth: {username-env: NOPE, password-env: P}\nsync:\n  - {from: a.io/x, to: r.io/x}\n",
			[]string{`:3: key "registries[r.io/ns].rate": applies to a whole registry`, `:4: key "registries[r.io/ns].ca": stat`, `:5: key "registries[r.io/ns].auth.username-env": environment variable NOPE is not set`}},
		{"not a map", "- a\n- b\n", []string{`:1: a config file is a map`}},
		{"every", "every: often\nsync:\n  - {from: a.io/x, to: b.io/x}\n", []string{`:1: key "every": must be a duration`}},
		{"every too short", "every: 10ms\nsync:\n  - {from: a.io/x, to: b.io/x}\n", []string{`:1: key "every": must be at least 1s`}},
		{"every not a string", "every: 5\nsync:\n  - {from: a.io/x, to: b.io/x}\n", []string{`:1: key "every": must be a string`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeNative(t, tc.content)
			_, err := LoadNative(p, rules.Options{LookupEnv: env(map[string]string{"P": "x"})})
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], p+":") || !strings.Contains(lines[i], w) {
					t.Errorf("error %d: %q, want %s%s", i, lines[i], p, w)
				}
			}
		})
	}
}

// FuzzNativeConfig: any input either loads or fails with errors that each
// name the file; it never panics.
func FuzzNativeConfig(f *testing.F) {
	for _, s := range []string{
		"sync:\n  - {from: a.io/x, to: b.io/x, tags: {include: ['^1'], exclude: x, semver: '>=1', latest: 2}}\n",
		"defaults: {proc: 2, platforms: [linux/amd64], referrers: {artifact-types: [a/b]}}\nsync: [{from: a.io/x:1, to: [b.io/x, c.io/y:2]}]\n",
		"registries: {r.io: {insecure: true, rate: 1.5, max-conns: 2, auth: {username-env: U, password-env: P}}}\nsync: [{from: r.io/a, to: r.io/b}]\n",
		"registries: {r.io/ns: {auth: {entry: r.io}}}\nauth-file: a.yaml\nsync: [{from: $X/a, to: ''}]\n",
		"sync: [{from: a.io/x:/v1/, to: b.io/x, platform-mode: keep-index}]\n",
		"sync: {}\n", "sync: [1, null, []]\n", "{\"sync\": [{\"from\": \"a.io/x\", \"to\": \"b.io/x\"}]}", "", "[]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		n, err := cfgfile.Decode("c.yaml", data)
		if err != nil {
			return
		}
		cfg, err := NativeFromNode("c.yaml", n, rules.Options{DefaultRegistry: "d.io", DefaultNamespace: "ns", LookupEnv: env(map[string]string{"U": "u", "P": "p", "X": "x.io"})})
		if err != nil {
			for _, e := range err.(rules.ErrorList) {
				if !strings.HasPrefix(e.Error(), "c.yaml") {
					t.Fatalf("error without the file: %v", e)
				}
			}
			return
		}
		for _, r := range cfg.Rules {
			if len(r.Destinations) == 0 {
				t.Fatalf("rule %s without destinations", r.Key)
			}
		}
	})
}

func TestLoadNativeJSON(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "imagesync.json")
	doc := `{
  "$schema": "https://raw.githubusercontent.com/imagesync/imagesync/main/imagesync.schema.json",
  "defaults": {"platforms": ["linux/amd64"]},
  "sync": [
    {"from": "a.io/x", "to": ["b.io/x"], "tags": {"semver": "^1"}},
    {"from": "a.io/y:1", "to": "b.io/y", "referrers": true,
     "tags": {"latest": 1}}
  ]
}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadNative(p, rules.Options{})
	if err == nil || !strings.Contains(err.Error(), p+`:7: key "sync[1].tags": tag filters select among listed tags`) {
		t.Fatalf("JSON errors must name the line: %v", err)
	}
	doc = strings.Replace(doc, `"a.io/y:1"`, `"a.io/y"`, 1)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadNative(p, rules.Options{})
	if err != nil || len(cfg.Rules) != 2 || cfg.Rules[0].Tags.SemverText != "^1" || cfg.Rules[1].Referrers == nil {
		t.Fatalf("%+v %v", cfg, err)
	}
}

func TestLoadNativeEvery(t *testing.T) {
	for content, want := range map[string]time.Duration{
		"sync:\n  - {from: a.io/x, to: b.io/x}\n":                                     0,
		"every: 1h30m\nsync:\n  - {from: a.io/x, to: b.io/x}\n":                       90 * time.Minute,
		"{\"every\": \"2s\", \"sync\": [{\"from\": \"a.io/x\", \"to\": \"b.io/x\"}]}": 2 * time.Second,
	} {
		cfg, err := LoadNative(writeNative(t, content), rules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Every != want {
			t.Errorf("%q: every %s, want %s", content, cfg.Every, want)
		}
	}
}

func TestNativeRepositoriesAndImmutable(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/c.yaml"
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`defaults:
  immutable: '^v\d+$'
sync:
  - from: reg.example.com/**
    to: m.example.com/x
    repositories: {include: [ns1/*], exclude: [ns1/b]}
  - from: reg.example.com/ns2/*
    to: m.example.com/y
    repositories: [ns2/a]
    immutable: ['^1\.']
`)
	cfg, err := LoadNative(p, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules.ApplyDefaults(cfg.Rules, cfg.Defaults.Rule)
	r0, r1 := cfg.Rules[0], cfg.Rules[1]
	if !r0.Source.Repos.Selects("ns1/a") || r0.Source.Repos.Selects("ns1/b") || r0.Source.Repos.Selects("ns2/a") {
		t.Errorf("entry 0 selects wrongly: %+v", r0.Source.Repos)
	}
	if lit, ok := r1.Source.Repos.Literal(); !ok || !reflect.DeepEqual(lit, []string{"ns2/a"}) {
		t.Errorf("entry 1 literal %v %v", lit, ok)
	}
	if !r0.IsImmutable("v12") || r0.IsImmutable("v1.2") || !r1.IsImmutable("1.2") || r1.IsImmutable("v12") {
		t.Error("immutable patterns: defaults for entry 0, its own for entry 1")
	}
	for _, tc := range []struct{ text, msg string }{
		{"sync:\n  - from: reg.example.com/app\n    to: m.example.com/x\n    repositories: [app]\n", "wildcard source"},
		{"sync:\n  - from: reg.example.com/**\n    to: m.example.com/x\n    repositories: {include: [A]}\n", "not allowed"},
		{"sync:\n  - from: reg.example.com/**\n    to: m.example.com/x\n    immutable: ['(']\n", "sync[0].immutable"},
	} {
		write(tc.text)
		if _, err := LoadNative(p, rules.Options{}); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.msg)
		}
	}
}

// TestLoadNativeSetAside: a native file's sync entries with errors are set
// aside with the strict errors; an error outside sync: still fails the file,
// and so does a file whose every entry is set aside.
func TestLoadNativeSetAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "imagesync.yaml")
	data := "sync:\n  - {from: q.io/a/ok:1, to: r.io/ns/ok}\n  - {from: q.io/a/bad:1,2, to: r.io/ns/bad:x}\n  - {from: q.io/a/env:1, to: $UNSET/x}\n"
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, strict := LoadNative(p, rules.Options{LookupEnv: env(nil)})
	aside := &rules.SetAside{}
	cfg, err := LoadNative(p, rules.Options{LookupEnv: env(nil), SetAside: aside})
	if err != nil || len(cfg.Rules) != 1 {
		t.Fatalf("LoadNative = %v, %v: want the one valid entry", cfg, err)
	}
	if strict == nil || aside.Errs.Error() != strict.Error() {
		t.Errorf("set aside:\n%v\nwant the strict errors:\n%v", aside.Errs, strict)
	}
	for name, bad := range map[string]string{
		"outside sync": "defaults: {proc: 0}\nsync:\n  - {from: q.io/a/ok:1, to: r.io/ns/ok}\n",
		"all invalid":  "sync:\n  - {from: q.io/a/bad:1,2, to: r.io/ns/bad:x}\n",
	} {
		_ = os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadNative(p, rules.Options{LookupEnv: env(nil), SetAside: &rules.SetAside{}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}
