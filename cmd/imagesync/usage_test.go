package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHelpAndMistakes(t *testing.T) {
	dir := t.TempDir()
	rules := writeFile(t, dir, "images.yaml", "quay.io/a/b:1: reg.example.com/a/b\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings of stdout
		stderr []string // substrings of stderr
	}{
		{"typo", []string{"snyc"}, exitUsage, nil, []string{`unknown command "snyc"; did you mean "sync"?`}},
		{"typo of plan", []string{"--proc", "3", "paln"}, exitUsage, nil, []string{`did you mean "plan"?`}},
		{"no such command", []string{"frobnicate"}, exitUsage, nil, []string{`unknown command "frobnicate"`, "sync, plan, verify"}},
		{"rule file without --images", []string{"images.yaml"}, exitUsage, nil, []string{`"images.yaml"`, "imagesync --images images.yaml"}},
		{"help", []string{"help"}, exitOK, []string{"Usage: imagesync <command>", "Commands:"}, nil},
		{"help sync", []string{"help", "sync"}, exitOK, []string{"Usage: imagesync sync", "--output-failed-images"}, nil},
		{"help with a typo", []string{"help", "snyc"}, exitUsage, nil, []string{`did you mean "sync"?`}},
		{"--version", []string{"--version"}, exitOK, []string{"imagesync dev"}, nil},
		{"top-level help shows the default command's flags", []string{"--help"}, exitOK,
			[]string{"Common flags of sync, the default command", "--images=FILE", "--auth=FILE", "--config=FILE", "-p, --proc=5"}, nil},
		{"--proc 0", []string{"--images", rules, "--proc", "0"}, exitUsage, nil, []string{"--proc 0"}},
		{"negative --proc", []string{"plan", "--images", rules, "--proc=-2"}, exitUsage, nil, []string{"--proc -2"}},
		{"negative --retries", []string{"--images", rules, "--retries=-1"}, exitUsage, nil, []string{"--retries -1"}},
		{"--max-conns 0", []string{"verify", "--images", rules, "--max-conns", "0"}, exitUsage, nil, []string{"--max-conns 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d", r.code, tc.code)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
		})
	}
}

// A malformed ~/.docker/config.json is one configuration error before any
// request: exit 2, naming the file and what is wrong with its JSON.
func TestMalformedDockerConfig(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.json", `{"auths": {"`+host+`": {"auth": "eDp5"}},`)
	rules := writeFile(t, dir, "images.yaml", host+"/a/b:1: "+host+"/c/d\n")
	r := runCLI(t, map[string]string{"DOCKER_CONFIG": dir}, "--images", rules, "--retries", "3")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d", r.code, exitUsage)
	}
	if strings.Count(r.stderr, cfg) == 0 || !strings.Contains(r.stderr, "unexpected EOF") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("want one line naming %s and the JSON error, got:\n%s", cfg, r.stderr)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests before the configuration error", n)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"snyc", "sync", 1}, {"sync", "sync", 0}, {"veriffy", "verify", 1}, {"pla", "plan", 1}, {"", "abc", 3}, {"abc", "xyz", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// Ctrl-C before anything started: the message names the program as it was
// invoked, on a line of its own; the jobs never started are one count in
// a summary that says interrupted, not a failure line each.
func TestInterruptedNamesTheProgram(t *testing.T) {
	dir := t.TempDir()
	var rules strings.Builder
	for i := range 13 {
		fmt.Fprintf(&rules, "127.0.0.1:1/a/b:%d: 127.0.0.1:2/c/d\n", i)
	}
	images := writeFile(t, dir, "images.yaml", rules.String())
	stop := make(chan struct{})
	close(stop)
	var out, errb strings.Builder
	lookup := func(k string) (string, bool) {
		switch k {
		case "HOME":
			return dir, true
		case "IMAGESYNC_LEDGER":
			return filepath.Join(dir, "ledger.jsonl"), true
		}
		return "", false
	}
	code := run(t.Context(), []string{"/usr/libexec/docker/cli-plugins/docker-sync", "sync", "--images", images},
		env{lookup: lookup, interrupt: stop}, &out, &errb)
	stderr := errb.String()
	t.Logf("stderr:\n%s", stderr)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
	if !regexp.MustCompile(`(?m)^docker sync: interrupted: stopping the transfers in flight`).MatchString(stderr) {
		t.Error("the Ctrl-C message does not name docker sync on a line of its own")
	}
	if !regexp.MustCompile(`(?m)^interrupted: 0 copied, 0 skipped, 0 filtered, 0 failed, 13 not started; `).MatchString(stderr) {
		t.Error("the summary does not count 13 not started")
	}
	if strings.Contains(stderr, "failed   ") || strings.Contains(stderr, "jobs failed") {
		t.Error("jobs never started are reported as failures")
	}
}
