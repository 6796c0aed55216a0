package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// watcher is `imagesync sync --every …` running as a process of its own
// (the test binary acting as imagesync), its stderr collected line by line.
type watcher struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	text strings.Builder
	more chan struct{} // closed and replaced on every new line
	done chan struct{} // closed when the process has exited
	err  error
}

func startWatcher(t *testing.T, home string, args ...string) *watcher {
	t.Helper()
	w := &watcher{more: make(chan struct{}), done: make(chan struct{})}
	w.cmd = exec.Command(os.Args[0], args...)
	w.cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, "IMAGESYNC_LEDGER="+filepath.Join(home, "ledger.db"))
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stdout = io.Discard
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.text.WriteString(sc.Text() + "\n")
			close(w.more)
			w.more = make(chan struct{})
			w.mu.Unlock()
		}
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		t.Logf("imagesync %s\nstderr:\n%s", strings.Join(args, " "), w.stderr())
	})
	return w
}

func (w *watcher) stderr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// waitCount waits until re matches at least n times in stderr.
func (w *watcher) waitCount(t *testing.T, re *regexp.Regexp, n int) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		w.mu.Lock()
		got, more := len(re.FindAllStringIndex(w.text.String(), -1)), w.more
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-more:
		case <-w.done:
			if len(re.FindAllStringIndex(w.stderr(), -1)) < n {
				t.Fatalf("the process exited (%v) before %q was seen %d times", w.err, re, n)
			}
		case <-deadline:
			t.Fatalf("%q seen %d times, not %d, within 2 minutes", re, got, n)
		}
	}
}

// exitCode waits for the process to end (up to limit) and returns its exit
// code and how long it took.
func (w *watcher) exitCode(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-w.done:
	case <-time.After(limit):
		t.Fatalf("still running %s after SIGTERM", limit)
	}
	return w.cmd.ProcessState.ExitCode(), time.Since(start)
}

var (
	summaryRE   = regexp.MustCompile(`(?m)^(interrupted: )?\d+ copied, \d+ skipped`)
	nextRunRE   = regexp.MustCompile(`(?m)^next run: `)
	keptRulesRE = regexp.MustCompile(`(?m)^error: the config could not be read again: this run keeps the last good rules: .*every.*must be a duration`)
)

// watchConfig is a config file copying every tag of lib/app.
func watchConfig(src, dst *registrytest.Registry, extra string) string {
	return fmt.Sprintf("%ssync:\n  - from: %s/lib/app\n    to: %s/lib/app\n", extra, src.Host, dst.Host)
}

// TestWatchMode runs sync --every 2s between two real registries (2.8 →
// v3) for three runs: a tag pushed between runs arrives in the next; a
// config file broken between runs keeps the last good rules and says so;
// SIGTERM during the wait ends the process at once with exit 0.
func TestWatchMode(t *testing.T) {
	// Serial: asserts the exit within 2 s of SIGTERM; a test beside it on 2 cores eats that margin.
	if testing.Short() {
		t.Skip("integration")
	}
	src := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	d1, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 512, true, 2501)
	home := t.TempDir()
	cfg := writeFile(t, home, "imagesync.yaml", watchConfig(src, dst, ""))
	w := startWatcher(t, home, "sync", "-f", cfg, "--every", "2s", "--no-progress")

	// Run 1 copies tag 1.
	w.waitCount(t, summaryRE, 1)
	assertDigest(t, dst, "lib/app", "1", d1)
	if !strings.Contains(w.stderr(), "1 copied, 0 skipped") {
		t.Errorf("run 1 did not copy exactly one image")
	}

	// A tag pushed between runs arrives in the next run, with the same
	// process (its ledger stays open: tag 1 is skipped).
	d2, _ := src.PushRandomImage(t, "lib/app", "2", linuxAmd64, 1, 512, false, 2502)
	w.waitCount(t, summaryRE, 2)
	assertDigest(t, dst, "lib/app", "2", d2)
	if !strings.Contains(w.stderr(), "1 copied, 1 skipped") {
		t.Errorf("run 2 did not copy tag 2 alone")
	}

	// A broken edit (every: is not a duration) between runs: run 3 keeps
	// the last good rules, says so, and still copies what they select.
	w.waitCount(t, nextRunRE, 2)
	writeFile(t, home, "imagesync.yaml", watchConfig(src, dst, "every: often\n"))
	d3, _ := src.PushRandomImage(t, "lib/app", "3", linuxAmd64, 1, 512, true, 2503)
	w.waitCount(t, summaryRE, 3)
	w.waitCount(t, keptRulesRE, 1)
	assertDigest(t, dst, "lib/app", "3", d3)
	if !strings.Contains(w.stderr(), "1 copied, 2 skipped") {
		t.Errorf("run 3 did not copy tag 3 alone")
	}

	// SIGTERM while waiting for run 4: exit 0 at once.
	w.waitCount(t, nextRunRE, 3)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, took := w.exitCode(t, 10*time.Second)
	t.Logf("exit %d %s after SIGTERM", code, took)
	if code != 0 {
		t.Errorf("SIGTERM between runs: exit %d, want 0", code)
	}
	if took > 2*time.Second {
		t.Errorf("SIGTERM between runs took %s to end the process", took)
	}
	if n := len(summaryRE.FindAllString(w.stderr(), -1)); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	if strings.Contains(w.stderr(), "press Ctrl-C again") {
		t.Errorf("SIGTERM between runs printed the Ctrl-C message of a run in progress")
	}
}

// TestWatchModeSIGTERMDuringRun: a signal during a run of watch mode acts
// as Ctrl-C does in a one-off run: the run stops, says so, no next run is
// waited for, exit 130.
func TestWatchModeSIGTERMDuringRun(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 4096, true, 2550)
	blobAsked := make(chan struct{}, 1)
	front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			select {
			case blobAsked <- struct{}{}:
			default:
			}
			select { // a slow source: the run is in progress for a while
			case <-time.After(20 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	home := t.TempDir()
	cfg := writeFile(t, home, "imagesync.yaml", fmt.Sprintf("sync:\n  - from: %s/lib/app\n    to: %s/lib/app\n", front.Host, dst.Host))
	w := startWatcher(t, home, "sync", "-f", cfg, "--every", "2s", "--no-progress")
	select {
	case <-blobAsked:
	case <-time.After(time.Minute):
		t.Fatal("the run never read a blob")
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, _ := w.exitCode(t, 30*time.Second)
	out := w.stderr()
	if code != exitInterrupted || !strings.Contains(out, "press Ctrl-C again") || !strings.Contains(out, "interrupted: ") || nextRunRE.MatchString(out) {
		t.Errorf("SIGTERM during a run: exit %d; want %d, the Ctrl-C notice, an interrupted summary and no next run", code, exitInterrupted)
	}
}
