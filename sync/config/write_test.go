package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/sync/rules"
)

// ruleSummary is what a rule means: its source and destinations.
func ruleSummary(rs []rules.Rule) []string {
	var out []string
	for _, r := range rs {
		for _, d := range r.Destinations {
			out = append(out, fmt.Sprintf("%s/%s:%v → %s/%s", r.Source.Registry, r.Source.Repository, r.Source.Tags, d.Registry, d.Repository))
		}
	}
	return out
}

// TestConvertRoundTrip: convert's output, read back as a native file, has
// the rules of the image-syncer files, sources and destinations as written
// ($VAR kept), the auth file by absolute path, and one destination written
// the way the file wrote it (string or list).
func TestConvertRoundTrip(t *testing.T) {
	dir := t.TempDir()
	images := write(t, dir, "images.yaml", `quay.io/coreos/etcd:1: [a.io/x/y, b.io/x/y]
nginx: a.io/n
redis: [a.io/r]
"$REG/x/y": "a.io/$REG"
`)
	auth := write(t, dir, "auth.yaml", "a.io: {username: u, password: s3cret}\n")
	lookup := func(k string) (string, bool) { return map[string]string{"REG": "c.io"}[k], k == "REG" }
	opt := rules.Options{LookupEnv: lookup}
	f, err := Convert(images, auth, "", opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"# yaml-language-server: $schema=" + SchemaURL + "\n# Converted by `imagesync convert` from images.yaml and auth.yaml.\n",
		"auth-file: " + auth + "\n",
		"  - from: nginx\n    to: a.io/n\n",
		"  - from: redis\n    to:\n      - a.io/r\n",
		"  - from: $REG/x/y\n    to: a.io/$REG\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Error("the output copies a secret of the auth file")
	}
	out := filepath.Join(dir, "imagesync.yaml")
	if err := f.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	native, err := LoadNative(out, opt)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := rules.LoadFile(images, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ruleSummary(native.Rules), ruleSummary(legacy); !slices.Equal(got, want) {
		t.Errorf("native rules %v, want %v", got, want)
	}
	if native.AuthFile != auth {
		t.Errorf("auth-file %q, want %q", native.AuthFile, auth)
	}

	// A legacy config: its own path is the auth file.
	cfg := write(t, dir, "config.yaml", "auth:\n  a.io: {username: u, password: p}\nimages:\n  nginx: a.io/n\n")
	if f, err = Convert("", "", cfg, opt); err != nil || f.AuthFile != cfg || len(f.Sync) != 1 || !strings.Contains(f.Comments[0], "from config.yaml.") {
		t.Errorf("Convert(--config) = %+v, %v", f, err)
	}
	for _, bad := range [][3]string{{images, "", cfg}, {"", "", ""}, {write(t, dir, "broken.yaml", "a: ''\n"), "", ""}} {
		if _, err := Convert(bad[0], bad[1], bad[2], opt); err == nil {
			t.Errorf("Convert%q: no error", bad)
		}
	}
}
