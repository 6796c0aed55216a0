package main

import (
	"strings"
	"testing"
)

// A config file (-f) or an images file (--images) in JSON nested 5 million
// levels deep is a configuration error naming the file and line (exit 2),
// not a stack overflow.
func TestDeepJSONConfig(t *testing.T) {
	dir := t.TempDir()
	deep := "{\"images\": {\"x.io/a:1\":\n" + strings.Repeat("[", 5_000_000) + strings.Repeat("]", 5_000_000) + "}}\n"
	images := writeFile(t, dir, "images.json", deep)
	config := writeFile(t, dir, "config.json", "{\"auth\": {},\n"+strings.TrimPrefix(deep, "{"))
	for _, tc := range []struct {
		args []string
		line string
	}{{[]string{"plan", "--images", images}, ":2:"}, {[]string{"plan", "-f", config}, ":3:"}} {
		args := tc.args
		r := runCLI(t, nil, args...)
		file := args[2]
		if r.code != exitUsage || !strings.Contains(r.stderr, file+tc.line) || !strings.Contains(r.stderr, "nested more than 10000 levels deep") {
			t.Errorf("%v: exit %d, want %d and %s%s named with the cap", args, r.code, exitUsage, file, tc.line)
		}
	}
}
