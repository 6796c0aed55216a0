package report

import (
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imagesync/imagesync/internal/vtscreen"
	"github.com/imagesync/imagesync/sync/engine"
)

// lockedBuilder is a strings.Builder safe for the progress ticker.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// resolved feeds the events of a resolved run: image a needs 100 bytes,
// image b 300.
func resolved(p *Progress) {
	p.Event(engine.Progress{Kind: engine.ProgressResolving, Images: 2})
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Work: 100})
	p.Event(engine.Progress{Kind: engine.ProgressResolved, Image: "src.io/ns/a:1"})
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/b:1", Work: 300})
	p.Event(engine.Progress{Kind: engine.ProgressResolved, Image: "src.io/ns/b:1"})
	p.Event(engine.Progress{Kind: engine.ProgressReady})
}

// The live block: images in flight with their bytes, counts, and a bar of
// bytes done out of a total that only shrinks.
func TestProgressBlock(t *testing.T) {
	var out lockedBuilder
	c := NewConsole(&out, true, func() int { return 100 })
	p := NewProgress(c, 3, ProgressOptions{Bar: true, Color: true})
	defer p.Finish()
	clock := time.Now()
	p.now = func() time.Time { return clock }
	resolved(p)
	p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: "src.io/ns/a:1"})
	p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: "src.io/ns/b:1"})
	for range 4 {
		clock = clock.Add(time.Second)
		p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 25})
	}

	p.mu.Lock()
	block := p.block()
	p.mu.Unlock()
	want := []string{
		`^0/3 images, 2 in flight$`,
		`^  src\.io/ns/a:1  100 B/100 B$`,
		`^  src\.io/ns/b:1  0 B/300 B$`,
		`^25% \[=+>? +\] \(100/400 B, [0-9.]+ [KMG]?i?B/s\) ETA 12s$`, // 300 bytes left at 25 B/s (the bar's own rate uses the real clock)
	}
	if len(block) != len(want) {
		t.Fatalf("block:\n%s", strings.Join(block, "\n"))
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(block[i]) {
			t.Errorf("line %d = %q, want %s", i, block[i], re)
		}
	}

	// b's blob turns out present: the total shrinks, the percentage grows.
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/b:1", Work: -200})
	p.Result(results[2]) // a failure
	p.mu.Lock()
	block = p.block()
	p.mu.Unlock()
	if !strings.HasPrefix(block[0], "1/3 images, 1 failed") || !strings.HasPrefix(block[len(block)-1], "50% ") || !strings.Contains(block[len(block)-1], "(100/200 B") {
		t.Errorf("after a shrink:\n%s", strings.Join(block, "\n"))
	}
	if !strings.Contains(out.String(), "\x1b[31mfailed") {
		t.Errorf("the failure line is not above the bar, or not red: %q", out.String())
	}
}

// Jobs never started (Ctrl-C) are counted, not listed.
func TestProgressNotStarted(t *testing.T) {
	var out lockedBuilder
	p := NewProgress(NewConsole(&out, false, nil), 3, ProgressOptions{Interval: time.Hour})
	p.Result(results[0])
	for range 2 {
		p.Result(engine.JobResult{Job: job("x", "x"), Action: engine.Failed, Err: engine.ErrInterrupted, NotStarted: true})
	}
	p.Finish()
	if s := out.String(); strings.Contains(s, "interrupted before") || !strings.Contains(s, "copied") {
		t.Errorf("output:\n%s", s)
	}
	if got := p.counts(); got != "3/3 images, 2 not started" {
		t.Errorf("counts = %q", got)
	}
}

// Redrawn many times on a 60-column terminal, with result lines scrolling
// above it, the block leaves no stale line: the screen holds the result
// lines, the final bar, nothing else.
func TestProgressNarrowTerminalLeavesNoStaleLines(t *testing.T) {
	var out lockedBuilder
	c := NewConsole(&out, true, func() int { return 60 })
	p := NewProgress(c, 4, ProgressOptions{Bar: true})
	resolved(p)
	names := []string{"src.io/ns/a:1", "src.io/ns/b:1"}
	for i, n := range names {
		p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: n + strings.Repeat("/very-long-repository-name", 3)})
		for range 10 {
			p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: n, Done: []int64{10, 30}[i]})
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		}
		p.Result(results[i])
		p.Event(engine.Progress{Kind: engine.ProgressFinished, Image: n + strings.Repeat("/very-long-repository-name", 3)})
	}
	p.Finish()
	screen := vtscreen.Render(out.String(), 60)
	// The first result line is longer than 60 columns: it wraps, once.
	if len(screen) != 4 || !strings.HasPrefix(screen[0], "copied") || screen[1] != "0 KiB" || !strings.HasPrefix(screen[2], "skipped") ||
		!strings.HasPrefix(screen[3], "100% [") {
		t.Fatalf("screen:\n%s", strings.Join(screen, "\n"))
	}
	// The result lines are long and wrap (they are permanent); no bar line does.
	for _, l := range screen {
		if strings.Contains(l, "in flight") || strings.Contains(l, "ETA") {
			t.Errorf("stale line: %q", l)
		}
	}
}

func TestProgressPlainLines(t *testing.T) {
	var out lockedBuilder
	p := NewProgress(NewConsole(&out, false, nil), 2, ProgressOptions{Interval: 20 * time.Millisecond})
	resolved(p)
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 100})
	time.Sleep(60 * time.Millisecond)
	p.Result(results[0])
	p.Finish()
	if s := out.String(); !strings.Contains(s, "progress: 0/2 images; 100 B of 400 B uploaded (25%)") || strings.Contains(s, "\r") || strings.Contains(s, "\x1b") {
		t.Fatalf("plain progress:\n%q", s)
	}
}

func TestConsoleFitsLines(t *testing.T) {
	var out strings.Builder
	c := NewConsole(&out, true, func() int { return 20 })
	c.SetBlock([]string{strings.Repeat("x", 30), "short"})
	c.Println("a log line")
	c.Close()
	if got := vtscreen.Render(out.String(), 20); len(got) != 1 || got[0] != "a log line" {
		t.Errorf("screen: %q (raw %q)", got, out.String())
	}
	if !strings.Contains(out.String(), strings.Repeat("x", 18)+"…") {
		t.Errorf("the block line was not cut to 19 columns: %q", out.String())
	}
}

// The Ctrl-C notice starts a line of its own, above the live block, even
// after an unfinished line.
func TestConsoleNoticeOnAFreshLine(t *testing.T) {
	var out strings.Builder
	c := NewConsole(&out, true, func() int { return 80 })
	c.SetBlock([]string{"1/3 images", "33% [===    ] (1/3 MiB)"})
	_, _ = c.Write([]byte("half a line"))
	c.Notice("docker sync: interrupted: finishing the images in flight")
	c.Close()
	got := vtscreen.Render(out.String(), 80)
	want := []string{"half a line", "docker sync: interrupted: finishing the images in flight"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A long image name gives way to its bytes on a narrow terminal.
func TestProgressLongNamesKeepTheirBytes(t *testing.T) {
	c := NewConsole(io.Discard, true, func() int { return 40 })
	p := NewProgress(c, 1, ProgressOptions{Bar: true})
	defer p.Finish()
	resolved(p)
	name := "registry.example.com/a/very/long/repository/name:1.0"
	p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: name})
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: name, Work: 1 << 20, Done: 512 << 10})
	p.mu.Lock()
	block := p.block()
	p.mu.Unlock()
	want := "  …pository/name:1.0  512.0 KiB/1.0 MiB" // 39 columns
	if block[1] != want || utf8.RuneCountInString(block[1]) > 39 {
		t.Errorf("line %q, want %q", block[1], want)
	}
}

// --quiet: no live block even on a terminal, only failures.
func TestProgressQuiet(t *testing.T) {
	var out lockedBuilder
	p := NewProgress(NewConsole(&out, true, func() int { return 80 }), 2, ProgressOptions{Bar: true, Quiet: true})
	resolved(p)
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 100})
	p.Result(results[0])
	p.Result(results[2])
	p.Finish()
	if s := out.String(); strings.Contains(s, "\x1b") || strings.Contains(s, "images") || strings.Contains(s, "copied") || !strings.Contains(s, "failed") {
		t.Errorf("quiet output: %q", s)
	}
}

// The rows in flight say where each image goes: two destinations of one
// source are told apart, and on a narrow terminal each side keeps its end.
func TestProgressRowsShowDestinations(t *testing.T) {
	for _, tc := range []struct {
		width int
		dsts  []string
		want  string
	}{
		{100, []string{"dst.io/m/a:1"}, "  src.io/ns/a:1 → dst.io/m/a:1  0 B/100 B"},
		{100, []string{"dst.io/m/a:1", "dst2.io/m/a:1"}, "  src.io/ns/a:1 → dst.io/m/a:1, dst2.io/m/a:1  0 B/100 B"},
		{100, []string{"d/1", "d/2", "d/3"}, "  src.io/ns/a:1 → d/1 (+2 more)  0 B/100 B"},
		{36, []string{"dst.io/mirror/a:1"}, "  …o/ns/a:1 → …irror/a:1  0 B/100 B"},
	} {
		c := NewConsole(io.Discard, true, func() int { return tc.width })
		p := NewProgress(c, 1, ProgressOptions{Bar: true})
		resolved(p)
		p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: "src.io/ns/a:1", Destinations: tc.dsts})
		p.mu.Lock()
		block := p.block()
		p.mu.Unlock()
		p.Finish()
		if block[1] != tc.want || utf8.RuneCountInString(block[1]) > tc.width-1 {
			t.Errorf("width %d, %v: %q, want %q", tc.width, tc.dsts, block[1], tc.want)
		}
	}
}

// The ETA is "?" until a second of uploads was measured (the first bursts
// fill buffers), and never less than the images left at the pace images
// finish (a --rate or slow manifests cost time no byte shows).
func TestProgressETA(t *testing.T) {
	c := NewConsole(io.Discard, true, func() int { return 100 })
	p := NewProgress(c, 3, ProgressOptions{Bar: true})
	defer p.Finish()
	clock := time.Now()
	p.now = func() time.Time { return clock }
	resolved(p) // 400 bytes to upload
	p.Event(engine.Progress{Kind: engine.ProgressStarted, Image: "src.io/ns/a:1"})
	eta := func() string { p.mu.Lock(); defer p.mu.Unlock(); return p.eta() }
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 20})
	clock = clock.Add(100 * time.Millisecond)
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 20}) // 400 B/s over 100 ms
	if got := eta(); got != "?" {
		t.Errorf("ETA after 100 ms of uploads: %s, want ?", got)
	}
	for range 4 {
		clock = clock.Add(time.Second)
		p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 90})
	}
	// Every byte done at 4 s, one image of three finished: two more at 4 s each.
	p.Result(engine.JobResult{Action: engine.Copied})
	if got := eta(); got != "8.2s" {
		t.Errorf("ETA with the bytes done and 2 of 3 images left: %s, want 8.2s", got)
	}
}

// With --log-format json the periodic progress is a JSON line too.
func TestProgressJSONLine(t *testing.T) {
	p := NewProgress(NewConsole(io.Discard, false, nil), 3, ProgressOptions{JSON: true})
	defer p.Finish()
	resolved(p)
	p.Event(engine.Progress{Kind: engine.ProgressBytes, Image: "src.io/ns/a:1", Done: 100})
	p.mu.Lock()
	line := p.jsonLocked()
	p.mu.Unlock()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if rec["msg"] != "progress" || rec["level"] != "INFO" || rec["images"] != 3.0 || rec["uploaded"] != 100.0 || rec["work"] != 400.0 || rec["percent"] != 25.0 {
		t.Errorf("progress line %q", line)
	}
}
