//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/internal/vtscreen"
)

func abs(n int) int { return max(n, -n) }

// frame is the screen after one redraw of the progress display.
type frame struct {
	screen      []string
	pct         int
	done, total float64 // bytes, from the bar's "(done/total unit" text
	doneUnit    float64
}

var barRE = regexp.MustCompile(`^(\d+)% \[[=> ]*\] \((\d+(?:\.\d+)?)( [KMGT]?i?B)?/(\d+(?:\.\d+)?) ([KMGT]?i?B)`)

func unit(u string) float64 {
	switch strings.TrimSpace(u) {
	case "KiB":
		return 1 << 10
	case "MiB":
		return 1 << 20
	case "GiB":
		return 1 << 30
	}
	return 1
}

// frames replays a terminal capture redraw by redraw: every frame whose
// last line is the bar.
func frames(out string, cols int) []frame {
	var fs []frame
	s := vtscreen.New(cols)
	// Each redraw starts by erasing the block: cut the stream there.
	parts := strings.SplitAfter(out, "\r\x1b[2K")
	for i, p := range parts {
		s.Write([]byte(strings.TrimSuffix(p, "\r\x1b[2K")))
		lines := s.Lines()
		if len(lines) > 0 {
			if m := barRE.FindStringSubmatch(lines[len(lines)-1]); m != nil {
				pct, _ := strconv.Atoi(m[1])
				doneUnit := m[3]
				if doneUnit == "" {
					doneUnit = m[5]
				}
				d, _ := strconv.ParseFloat(m[2], 64)
				tot, _ := strconv.ParseFloat(m[4], 64)
				fs = append(fs, frame{screen: lines, pct: pct, done: d * unit(doneUnit), total: tot * unit(m[5]), doneUnit: unit(doneUnit)})
			}
		}
		if i < len(parts)-1 {
			s.Write([]byte("\r\x1b[2K"))
		}
	}
	return fs
}

// underPTY runs imagesync under script(1): a pseudo-terminal of cols
// columns, TERM as given. It returns everything the terminal received.
func underPTY(t *testing.T, cols int, term string, home string, args ...string) (string, int) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not found")
	}
	self := installAs(t, filepath.Join(home, "bin"), "imagesync")
	quoted := []string{self}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	cmdline := fmt.Sprintf("stty cols %d rows 50; exec %s", cols, strings.Join(quoted, " "))
	cmd := exec.Command(script, "-qec", cmdline, "/dev/null")
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, "TERM="+term)
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// The bar on a real pseudo-terminal: bytes done/total known before the
// first upload, a percentage that matches them (below 50% while fewer than
// half of the bytes are done), a total that never grows, the images in
// flight above it, and on 60 columns no stale line at the end.
func TestProgressBarUnderPTY(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	const images = 6
	var rules strings.Builder
	slow := throttled(t, src.Host, 3<<20)
	for i := range images {
		src.PushRandomImage(t, fmt.Sprintf("lib/app%d", i), "1", linuxAmd64, 2, 384<<10, false, int64(300+i))
		fmt.Fprintf(&rules, "%s/lib/app%d:1: %s/mirror/app%d\n", slow, i, dst.Host, i)
	}
	home := t.TempDir()
	imagesFile := writeFile(t, home, "images.yaml", rules.String())

	out, code := underPTY(t, 60, "xterm", home, "--images", imagesFile, "--no-ledger", "--proc", "2")
	if code != 0 {
		t.Fatalf("exit %d:\n%q", code, out)
	}
	fs := frames(out, 60)
	if len(fs) < 5 {
		t.Fatalf("%d bar frames:\n%q", len(fs), out)
	}
	var early, half *frame
	for i := range fs {
		f := &fs[i]
		if f.total <= 0 || f.done > f.total*1.001 {
			t.Fatalf("frame %d: %v of %v bytes", i, f.done, f.total)
		}
		// The percentage is the bytes' (the shown numbers are rounded to
		// one decimal of their unit).
		slack := 1.5 + 100*0.05*f.doneUnit/f.total
		if want := 100 * f.done / f.total; float64(f.pct) < want-slack || float64(f.pct) > want+slack {
			t.Errorf("frame %d shows %d%% for %v of %v bytes", i, f.pct, f.done, f.total)
		}
		if f.done < f.total/2 && f.pct >= 50 {
			t.Errorf("frame %d: %d%% with fewer than half of the bytes done", i, f.pct)
		}
		if i > 0 && f.total > fs[i-1].total*1.001 {
			t.Errorf("the total grew from %v to %v", fs[i-1].total, f.total)
		}
		if early == nil || abs(f.pct-10) < abs(early.pct-10) {
			early = f
		}
		if half == nil || abs(f.pct-50) < abs(half.pct-50) {
			half = f
		}
	}
	// Known before the first upload: the first bar already has the whole
	// total (6 images × 2 layers of ~384 KiB, compressed).
	if first := fs[0]; first.total < images*2*300<<10 {
		t.Errorf("first bar total %v bytes: not the whole run", first.total)
	}
	if abs(early.pct-10) > 8 || abs(half.pct-50) > 15 {
		t.Fatalf("no frame near 10%% or 50%% (closest %d%%, %d%%):\n%q", early.pct, half.pct, out)
	}
	// Early on, the ETA is unknown or plausible: the source sends at most
	// 3 MiB/s, so 90% of ~4.5 MiB cannot be left for less than a second
	// (issue #23: it read 100ms at 5%).
	for _, l := range early.screen {
		if m := regexp.MustCompile(` ETA (\S+)$`).FindStringSubmatch(l); m != nil && m[1] != "?" {
			if d, err := time.ParseDuration(m[1]); err != nil || d < 500*time.Millisecond {
				t.Errorf("early ETA %s at %d%%:\n%s", m[1], early.pct, strings.Join(early.screen, "\n"))
			}
		}
	}
	// SRC → DST, each side keeping its end on this 60-column terminal.
	inFlight := regexp.MustCompile(`^  \S*/lib/app(\d):1 → \S*/mirror/app(\d):1  \d+(\.\d)? [KM]iB/\d+(\.\d)? [KM]iB$`)
	seen := false
	for _, l := range half.screen {
		seen = seen || inFlight.MatchString(l)
	}
	if !seen {
		t.Errorf("no image in flight with its bytes above the bar:\n%s", strings.Join(half.screen, "\n"))
	}

	final := vtscreen.Render(out, 60)
	bars := 0
	for _, l := range final {
		if strings.Contains(l, "in flight") || strings.Contains(l, "ETA") || strings.HasPrefix(l, "resolving") {
			t.Errorf("stale line left on the screen: %q", l)
		}
		if barRE.MatchString(l) {
			bars++
		}
	}
	end := strings.Join(final, "\n")
	if bars != 1 || !regexp.MustCompile(`\n100% \[=+\] \([0-9.]+/[0-9.]+ MiB, [0-9.]+ [KM]iB/s\) in [0-9.]+m?s\n6 copied, `).MatchString(end) {
		t.Errorf("the end of the screen is not the finished bar then the summary:\n%s", strings.Join(final, "\n"))
	}
	capture := func(name string, lines []string) {
		text := strings.Join(lines, "\n")
		t.Logf("%s:\n%s", name, text)
		if dir := os.Getenv("IMAGESYNC_PTY_CAPTURES"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, name+".txt"), []byte(text+"\n"), 0o644)
		}
	}
	capture("bar-10", early.screen[max(0, len(early.screen)-8):])
	capture("bar-50", half.screen[max(0, len(half.screen)-8):])
	capture("bar-end", final[max(0, len(final)-10):])

	// TERM=dumb (everything is in sync now): no bar, no escape sequence, no
	// carriage return but the pty's own line ends.
	out, code = underPTY(t, 60, "dumb", home, "--images", imagesFile, "--no-ledger", "--proc", "2")
	if code != 0 || strings.Contains(out, "\x1b") || strings.Contains(strings.ReplaceAll(out, "\r\n", "\n"), "\r") || strings.Count(out, "skipped ") != images {
		t.Errorf("TERM=dumb: exit %d, %q", code, out)
	}
}

// plan on an 80-column terminal (issue #23): every table row fits, the
// references keep their ends, digests are short; -o wide prints them whole.
func TestPlanTableFitsTheTerminal(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	var rules strings.Builder
	digests := map[string]string{}
	for i := range 3 {
		repo := fmt.Sprintf("a-rather-long-team-name/and-a-long-application-name-%d", i)
		digests[repo], _ = src.PushRandomImage(t, repo, "1.0.0", linuxAmd64, 1, 256, false, int64(40+i))
		fmt.Fprintf(&rules, "%s/%s:1.0.0: %s/mirror/%s\n", src.Host, repo, dst.Host, repo)
	}
	home := t.TempDir()
	images := writeFile(t, home, "images.yaml", rules.String())
	out, code := underPTY(t, 80, "xterm", home, "plan", "--images", images, "--no-ledger")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	screen := vtscreen.Render(out, 200) // wider than the table: a row longer than 80 shows as such
	rows := 0
	for _, l := range screen {
		if utf8.RuneCountInString(l) > 80 {
			t.Errorf("a row of %d columns on an 80-column terminal: %q", utf8.RuneCountInString(l), l)
		}
		if strings.HasPrefix(l, "copy ") {
			rows++
			if !regexp.MustCompile(`^copy +…\S*-name-\d:1\.0\.0 +…\S*-name-\d:1\.0\.0 +sha256:[0-9a-f]{12} +\d`).MatchString(l) {
				t.Errorf("row %q: want both references cut at their start, a short digest", l)
			}
		}
	}
	if rows != 3 {
		t.Errorf("%d copy rows, want 3:\n%s", rows, strings.Join(screen, "\n"))
	}
	out, code = underPTY(t, 80, "xterm", home, "plan", "--images", images, "--no-ledger", "-o", "wide")
	for repo, d := range digests {
		if code != 0 || !strings.Contains(out, src.Host+"/"+repo+":1.0.0") || !strings.Contains(out, dst.Host+"/mirror/"+repo+":1.0.0") || !strings.Contains(out, d) {
			t.Errorf("-o wide: exit %d; want %s whole with its digest %s", code, repo, d)
		}
	}
}
