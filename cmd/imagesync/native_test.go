package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/rules"
)

// countingServer answers every request with 404 and counts them.
func countingServer(t *testing.T) (host string, n *atomic.Int64) {
	n = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), n
}

// TestConfigErrorsExit2BeforeAnyRequest: a broken config file is reported
// with file, line and field, exit 2, and no registry hears of it.
func TestConfigErrorsExit2BeforeAnyRequest(t *testing.T) {
	host, n := countingServer(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "imagesync.yaml", `sync:
  - from: `+host+`/lib/app
    to: `+host+`/mirror/app
  - from: `+host+`/lib/other
    to: `+host+`/mirror/other
    tags: {semver: '>= banana'}
`)
	for _, cmd := range []string{"sync", "plan", "verify"} {
		r := runCLI(t, nil, cmd, "--file", cfg)
		if r.code != exitUsage || !strings.Contains(r.stderr, cfg+`:6: key "sync[1].tags.semver": bad semver constraint`) {
			t.Errorf("%s: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"sync", "-f", cfg, "--images", cfg},
		{"sync", "-f", cfg, host + "/a/b", host + "/c/d"},
		{"sync", host + "/a/b"},
		{"sync", host + "/a/b:1.0", host + "/c/d", "--latest", "2"},
		{"sync", host + "/a/b", host + "/c/d", "--platform", "linux"},
		{"sync", host + "/a/b", host + "/c/d", "--platform", "linux/amd64", "--arch", "arm64"},
		{"sync", host + "/a/b", host + "/c/d", "--artifact-type", "x/y"},
		{"plan", host + "/a/B", host + "/c/d"},
		{"convert"},
		{"convert", "--images", cfg},
		{"convert", "--config", cfg, "--images", cfg},
	} {
		if r := runCLI(t, nil, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, r.code, exitUsage)
		}
	}
	// The default command takes a one-off copy too; a word that is no
	// reference is still a mistyped command.
	if r := runCLI(t, nil, host+"/a/b"); r.code != exitUsage || !strings.Contains(r.stderr, "a one-off copy takes SRC DST") {
		t.Errorf("imagesync SRC alone: exit %d", r.code)
	}
	if r := runCLI(t, nil, "snyc", host+"/a/b", host+"/c/d"); r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "sync"`) {
		t.Errorf("imagesync snyc SRC DST: exit %d", r.code)
	}
	// The two kinds of files, each given to the other flag: a hint.
	if r := runCLI(t, nil, "plan", "--images", cfg); r.code != exitUsage || !strings.Contains(r.stderr, "give it with -f") {
		t.Errorf("native file as --images: exit %d", r.code)
	}
	images := writeFile(t, dir, "images.yaml", host+"/a/b: "+host+"/c/d\n")
	if r := runCLI(t, nil, "plan", "-f", images); r.code != exitUsage || !strings.Contains(r.stderr, "goes with --images") {
		t.Errorf("images file as -f: exit %d", r.code)
	}
	if n.Load() != 0 {
		t.Errorf("%d requests before the configuration was found broken", n.Load())
	}
}

// TestConfigDefaultsYieldToFlags: the file's defaults apply unless the
// command line says otherwise; registries' limits reach the client.
func TestConfigDefaultsYieldToFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "imagesync.yaml", `defaults: {proc: 7, retries: 4, max-conns: 3, trust-ledger: true}
registries:
  127.0.0.1:1: {rate: 2, max-conns: 1}
  registry-1.docker.io: {rate: 5}
sync:
  - {from: 127.0.0.1:1/a/b:1, to: 127.0.0.1:1/c/d}
`)
	var in Inputs
	in.File, in.Proc, in.Retries, in.MaxConns = cfg, 5, 2, 32
	rc := &runContext{env: env{lookup: func(string) (string, bool) { return "", false }}, explicit: map[string]bool{"retries": true}, global: &Globals{}}
	s := &session{keychain: newTestChain()}
	if _, _, err := in.load(rc, s); err != nil {
		t.Fatal(err)
	}
	if in.Proc != 7 || in.Retries != 2 || in.MaxConns != 3 {
		t.Errorf("proc %d retries %d max-conns %d, want 7 2 (the flag) 3", in.Proc, in.Retries, in.MaxConns)
	}
	if h := s.hosts["127.0.0.1:1"]; h.Rate != 2 || h.MaxConns != 1 {
		t.Errorf("host policy %+v", h)
	}
	// Docker Hub under any name is limited at the host its API answers at.
	if h := s.hosts["index.docker.io"]; h.Rate != 5 || len(s.hosts) != 2 {
		t.Errorf("Docker Hub's host policy %+v (hosts %v)", h, s.hosts)
	}
	var tl TrustLedger
	if !tl.effective(rc, &in, s) {
		t.Error("defaults.trust-ledger: true is not in effect")
	}
	rc.explicit["trust-ledger"] = true // --trust-ledger=false on the command line
	if tl.effective(rc, &in, s) {
		t.Error("an explicit --trust-ledger=false lost to the file")
	}
	in.NoLedger = true
	if (TrustLedger{Trust: true}).effective(rc, &in, s) {
		t.Error("trusting a ledger with --no-ledger")
	}
}

// configExamples are every config file example the project ships: the
// files under examples/ and the README's yaml blocks holding a sync: list.
func configExamples(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	for _, f := range []string{"imagesync.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		out["examples/"+f] = b
	}
	for _, f := range []string{"README.md", "README.zh-CN.md"} {
		readme, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```ya?ml\n(.*?)```").FindAllSubmatch(readme, -1)
		for i, b := range blocks {
			if regexp.MustCompile(`(?m)^sync:`).Match(b[1]) {
				out[fmt.Sprintf("%s yaml block %d", f, i)] = b[1]
			}
		}
	}
	if len(out) < 3 {
		t.Fatalf("found only %d config examples", len(out))
	}
	return out
}

// TestSchemaValidatesExamples: every shipped example is valid for the JSON
// Schema and for imagesync itself; broken files are rejected by both.
func TestSchemaValidatesExamples(t *testing.T) {
	s := compileSchema(t)
	envs := map[string]string{"HARBOR_USER": "u", "HARBOR_TOKEN": "p", "QUAY_USER": "u", "QUAY_TOKEN": "p", "REGISTRY": "r.io"}
	lookup := func(k string) (string, bool) { v, ok := envs[k]; return v, ok }
	for name, doc := range configExamples(t) {
		if err := validateYAML(s, doc); err != nil {
			t.Errorf("%s does not match the schema: %v", name, err)
		}
		dir := t.TempDir()
		for _, f := range []string{"harbor-ca.crt", "auth.yaml"} {
			writeFile(t, dir, f, "{}\n")
		}
		p := writeFile(t, dir, "imagesync.yaml", string(doc))
		if _, err := config.LoadNative(p, rules.Options{LookupEnv: lookup}); err != nil {
			t.Errorf("%s does not load: %v", name, err)
		}
	}
	for _, bad := range []string{
		"defaults: {proc: 0}\nsync: [{from: a.io/x, to: b.io/x}]\n",
		"sync: []\n",
		"sync: [{from: a.io/x}]\n",
		"sync: [{from: a.io/x, to: b.io/x, tags: {latest: 0}}]\n",
		"sync: [{from: a.io/x, to: b.io/x, platforms: [linux]}]\n",
		"sync: [{from: a.io/x, to: b.io/x, platform-mode: sparse}]\n",
		"sync: [{from: a.io/x, to: b.io/x, colour: red}]\n",
		"registries: {r.io: {auth: {username: me, password: x}}}\nsync: [{from: a.io/x, to: b.io/x}]\n",
		"registries: {r.io: {cert: a.pem}}\nsync: [{from: a.io/x, to: b.io/x}]\n",
		"sync: [{from: a.io/x, to: b.io/x, referrers: yes please}]\n",
	} {
		if validateYAML(s, []byte(bad)) == nil {
			t.Errorf("the schema accepts %q", bad)
		}
		p := writeFile(t, t.TempDir(), "imagesync.yaml", bad)
		if _, err := config.LoadNative(p, rules.Options{LookupEnv: lookup}); err == nil {
			t.Errorf("imagesync accepts %q", bad)
		}
	}
}

func newTestChain() *credentials.Chain {
	return &credentials.Chain{Secrets: &credentials.SecretSet{}}
}
