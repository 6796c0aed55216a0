package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestComplete(t *testing.T) {
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{""}, []string{"sync", "plan", "verify", "convert", "job", "status", "ledger", "version", "completion", ":4"}},
		{[]string{"ledger", ""}, []string{"export", "stats", ":4"}},
		{[]string{"v"}, []string{"verify", "version", ":4"}},
		{[]string{"--ima"}, []string{"--images", ":4"}},                         // the default command's flags at the root
		{[]string{"plan", "--detailed"}, []string{"--detailed-exitcode", ":4"}}, // plan's own
		{[]string{"plan", "-o", ""}, []string{"table", "wide", "json", ":4"}},
		{[]string{"--output-images-format", "y"}, []string{"yaml", ":4"}},
		{[]string{"--arch", "arm"}, []string{"arm64", "arm", "arm:v7", "arm:v6", ":4"}},
		{[]string{"--os=l"}, []string{"--os=linux", ":4"}},
		{[]string{"--platform", "linux/arm"}, []string{"linux/arm64", "linux/arm/v7", "linux/arm/v6", ":4"}},
		{[]string{"plan", "--platform=linux/amd64,linux/a"}, []string{"--platform=linux/amd64,linux/amd64", "--platform=linux/amd64,linux/arm64", "--platform=linux/amd64,linux/arm/v7", "--platform=linux/amd64,linux/arm/v6", ":4"}},
		{[]string{"--arch", "amd64,arm:"}, []string{"amd64,arm:v7", "amd64,arm:v6", ":4"}},
		{[]string{"sync", "--images", "x.yaml", ""}, []string{":4"}}, // nothing positional
		{[]string{"completion", "--h"}, []string{"--help", ":4"}},
		{[]string{"verify", "--d"}, []string{"--debug", "--deep", "--default-namespace", "--docker-config", ":4"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish", "powershell", ":4"}}, // its argument
		{[]string{"completion", "f"}, []string{"fish", ":4"}},
		{[]string{"completion", "zsh", ""}, []string{":4"}},
	}
	for _, tc := range tests {
		got := completions(t, "imagesync", tc.words...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
	// Commands come with their descriptions (zsh and fish show them).
	if r := runCLI(t, nil, "__complete", "ledger", ""); r.stdout != "export\tPrint everything the ledger knows as JSON lines, sorted\nstats\tCount what the ledger holds\n:4\n" {
		t.Errorf("ledger <TAB>: %q", r.stdout)
	}
	// A rule, auth or config file: .yaml, .yml, .json and folders, not the
	// ledger's lock file or other files.
	dir := t.TempDir()
	for _, f := range []string{"images.yaml", "auth.yml", "cfg.json", "ledger.db.lock", "notes.txt", ".hidden.yaml"} {
		writeFile(t, dir, f, "")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--images", "--auth", "-f"} {
		want := []string{dir + "/auth.yml", dir + "/cfg.json", dir + "/images.yaml", dir + "/sub/", ":6"}
		if got := completions(t, "imagesync", flag, dir+"/"); !slices.Equal(got, want) {
			t.Errorf("%s %s/<TAB> = %q, want %q", flag, dir, got, want)
		}
	}
	if got := completions(t, "imagesync", "--images", dir+"/i"); !slices.Equal(got, []string{dir + "/images.yaml", ":4"}) {
		t.Errorf("--images %s/i<TAB> = %q", dir, got)
	}
	// The kubectl completion helper takes the words without __complete.
	var out, errb strings.Builder
	if code := run(t.Context(), []string{"/x/kubectl_complete-imagesync", "pl"}, env{lookup: func(string) (string, bool) { return "", false }}, &out, &errb); code != 0 || out.String() != "plan\tShow what sync would do, writing nothing\n:4\n" {
		t.Errorf("kubectl_complete-imagesync pl: %d %q", code, out.String())
	}
	// The Docker CLI sends `__complete sync …`.
	if got := completions(t, "/p/docker-sync", "sync", "ver"); !slices.Equal(got, []string{"verify", "version", ":4"}) {
		t.Errorf("docker completion: %q", got)
	}
}

// The bash script really completes, asking the binary.
func TestBashCompletionScript(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	bin := installAs(t, dir, "imagesync")
	script := runCLI(t, nil, "completion", "bash").stdout
	f := writeFile(t, dir, "imagesync.bash", script)
	for words, want := range map[string]string{
		"imagesync pl":             "plan",
		"imagesync plan --detaile": "--detailed-exitcode",
		"imagesync --arch arm6":    "arm64",
		"imagesync --arch arm:v7":  "v7", // bash replaces what follows the colon
		"imagesync --os=lin":       "linux",
	} {
		cmd := exec.Command(bash, "-c", `source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; _imagesync_complete; printf '%s\n' "${COMPREPLY[@]}"`, "_", f, strings.Replace(words, "imagesync", bin, 1))
		cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%q completes to %q (%v), want %q", words, out, err, want)
		}
	}
	for _, sh := range []string{"zsh", "fish", "powershell"} {
		if s := runCLI(t, nil, "completion", sh).stdout; !strings.Contains(s, "__complete") || strings.Contains(s, "@PROG@") {
			t.Errorf("%s script: %q", sh, s)
		}
	}
}
