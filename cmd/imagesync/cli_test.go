package main

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "imagesync ") {
		t.Fatalf("%+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "images.yaml", "quay.io/a/b:1: reg.example.com/a/b\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no rules", []string{"sync"}, []string{"--images"}},
		{"unknown flag", []string{"--nope"}, []string{"--nope"}},
		{"bad format", []string{"--images", good, "--output-images-format", "xml"}, []string{"output-images-format"}},
		{"missing file", []string{"--images", dir + "/missing.yaml"}, []string{"missing.yaml"}},
		{"bad extension", []string{"--images", writeFile(t, dir, "images.txt", "{}")}, []string{"images.txt", "extension"}},
		{"malformed json", []string{"--images", writeFile(t, dir, "bad.json", "{\n\"a/b/c\": \"x/y/z\",\n}")}, []string{"bad.json:3"}},
		{"malformed yaml", []string{"--images", writeFile(t, dir, "bad.yaml", "a/b/c: [x\n")}, []string{"bad.yaml"}},
		{"duplicate key", []string{"--images", writeFile(t, dir, "dup.yaml", "quay.io/a/b:1: r.io/a/b\nquay.io/a/b:1: r.io/c/d\n")}, []string{"dup.yaml:2", `"quay.io/a/b:1"`, "line 1"}},
		{"count mismatch", []string{"--images", writeFile(t, dir, "count.yaml", "quay.io/a/b:1,2,3: r.io/a/b:x,y\n")}, []string{"count.yaml:1", `"quay.io/a/b:1,2,3"`}},
		{"bad regex", []string{"--images", writeFile(t, dir, "re.yaml", "quay.io/a/b:/v(/: r.io/a/b\n")}, []string{"re.yaml:1", `"quay.io/a/b:/v(/"`}},
		{"bad auth", []string{"--images", good, "--auth", writeFile(t, dir, "auth.yaml", "quay.io:\n  password: $UNSET_PW\n")}, []string{"auth.yaml:2", "UNSET_PW"}},
		{"bad platform", []string{"--images", good, "--arch", ":v7"}, []string{"--arch"}},
		{"all errors at once", []string{"--images", writeFile(t, dir, "many.yaml", "quay.io/a/b:/(/: r.io/a/b\nquay.io/c/d:1: \"\"\n")}, []string{"many.yaml:1", "many.yaml:2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d", r.code, exitUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not name %q", w)
				}
			}
		})
	}
}
