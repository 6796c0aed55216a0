//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxShell is an interactive shell in a detached tmux session.
type tmuxShell struct {
	t      *testing.T
	tmux   string
	socket string
	env    []string
}

func (s *tmuxShell) cmd(args ...string) string {
	s.t.Helper()
	c := exec.Command(s.tmux, append([]string{"-S", s.socket}, args...)...)
	c.Env = s.env
	out, err := c.CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *tmuxShell) screen() string { return s.cmd("capture-pane", "-p", "-J") }

// waitFor polls the screen until ok says yes, or fails after a while.
func (s *tmuxShell) waitFor(what string, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sc := s.screen()
		if ok(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s; the screen:\n%s\n(%q)", what, sc, sc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promptLine is the last line of the screen that starts with the prompt
// (listings and fish's pager go below it).
func promptLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "$") {
			return strings.TrimRight(lines[i], " ")
		}
	}
	return ""
}

// Completion driven for real: bash, zsh and fish run interactively in
// tmux with the script imagesync prints, and Tab is pressed.
func TestShellCompletionInTmux(t *testing.T) {
	// Serial: waits for shell prompts in tmux with fixed timeouts. The three
	// shells run beside each other (each its own tmux server): 44 s one
	// after the other.
	if testing.Short() {
		t.Skip("drives real shells")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not found (scripts/test-deps.sh installs it)")
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			sh, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s not found (scripts/test-deps.sh installs it)", shell)
			}
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			work := filepath.Join(dir, "work")
			bin := filepath.Join(dir, "bin")
			installAs(t, bin, "imagesync")
			for _, d := range []string{home, work} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			writeFile(t, work, "images.yaml", "a: b\n")
			writeFile(t, work, "zz-other.txt", "")
			writeFile(t, work, "images.yaml.lock", "")
			script := runCLI(t, nil, "completion", shell).stdout
			var start string
			switch shell {
			case "bash":
				writeFile(t, home, "imagesync.bash", script)
				writeFile(t, home, ".bashrc", "PS1='$ '\nsource ~/imagesync.bash\n")
				start = sh + " --noprofile --rcfile " + filepath.Join(home, ".bashrc") + " -i"
			case "zsh": // from fpath, as the help says
				fp := filepath.Join(home, "zfunc")
				if err := os.MkdirAll(fp, 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, fp, "_imagesync", script)
				writeFile(t, home, ".zshrc", "PS1='$ '\nfpath=(~/zfunc $fpath)\nautoload -U compinit && compinit -u\n")
				start = sh + " -i"
			case "fish":
				writeFile(t, home, "imagesync.fish", script)
				start = sh + " --no-config -i -C 'function fish_prompt; echo \"\\$ \"; end; source ~/imagesync.fish'"
			}
			s := &tmuxShell{t: t, tmux: tmux, socket: filepath.Join(dir, "tmux.sock")}
			s.env = append(os.Environ(), "HOME="+home, "ZDOTDIR="+home, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"IMAGESYNC_TEST_AS_MAIN=1", "TERM=xterm", "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_DATA_HOME="+filepath.Join(home, ".local"))
			s.cmd("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", "-c", work, start)
			t.Cleanup(func() { _ = exec.Command(tmux, "-S", s.socket, "kill-server").Run() })
			s.waitFor("no prompt", func(sc string) bool { return strings.HasSuffix(promptLine(sc), "$") })

			type tabCase struct {
				typed string
				tabs  int
				ok    func(screen, last string) bool
				what  string
			}
			cases := []tabCase{
				{"imagesync pl", 1, func(_, last string) bool { return strings.HasSuffix(last, "imagesync plan") }, "a command"},
				{"imagesync plan --detail", 1, func(_, last string) bool { return strings.HasSuffix(last, "--detailed-exitcode") }, "a flag"},
				{"imagesync completion ", 2, func(sc, _ string) bool {
					return strings.Contains(sc, "powershell") && strings.Contains(sc, "fish") && !strings.Contains(sc, "images.yaml")
				}, "the shells after completion"},
				{"imagesync --arch arm:", 1, func(sc, last string) bool {
					return strings.HasSuffix(last, "--arch arm:v") && !strings.Contains(sc, "images.yaml")
				}, "values after a colon"},
				{"imagesync --images ima", 1, func(_, last string) bool { return strings.HasSuffix(last, "--images images.yaml") }, "file names"},
				{"imagesync --images ", 2, func(sc, last string) bool {
					return (strings.Contains(sc, "images.yaml") || strings.HasSuffix(last, "images.yaml")) && !strings.Contains(sc, ".lock") && !strings.Contains(sc, "zz-other")
				}, "rule files only (no .lock)"},
				{"imagesync --platform linux/arm", 2, func(sc, _ string) bool {
					return strings.Contains(sc, "linux/arm/v7") && strings.Contains(sc, "linux/arm64")
				}, "--platform values"},
			}
			if shell != "bash" { // zsh and fish show what each command does, as for docker's own
				cases = append(cases, tabCase{"imagesync ", 2, func(sc, _ string) bool {
					return strings.Contains(sc, "Show what sync would do") && strings.Contains(sc, "Look into the digest ledger")
				}, "command descriptions"})
			}
			for _, c := range cases {
				s.cmd("send-keys", "-l", c.typed)
				for range c.tabs {
					time.Sleep(300 * time.Millisecond) // a double Tab must be two presses
					s.cmd("send-keys", "Tab")
				}
				sc := s.waitFor(shell+" does not complete "+c.what+" for "+strings.TrimSpace(c.typed), func(sc string) bool {
					return c.ok(sc, promptLine(sc))
				})
				for _, bad := range []string{"unrecognized modifier", "command not found", "Unknown command", "parse error"} {
					if strings.Contains(sc, bad) {
						t.Errorf("%s: %q on the screen:\n%s", c.typed, bad, sc)
					}
				}
				// A fresh screen for the next case: kill the line, clear.
				s.cmd("send-keys", "C-u")
				s.waitFor("the line is not killed", func(sc string) bool { return promptLine(sc) == "$" })
				s.cmd("send-keys", "-l", "clear")
				s.cmd("send-keys", "Enter")
				s.waitFor("no fresh prompt", func(sc string) bool { return strings.TrimSpace(sc) == "$" })
			}
		})
	}
}
