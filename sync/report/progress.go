package report

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imagesync/imagesync/sync/engine"
)

// ProgressOptions say how a run shows its progress.
type ProgressOptions struct {
	Bar      bool          // a live bar (stderr is a terminal and --no-progress is not given)
	Color    bool          // colors allowed (a terminal, and NO_COLOR unset)
	Quiet    bool          // only failures and the summary
	Interval time.Duration // without a bar: a plain progress line this often (0: 10s)
}

// Progress shows a sync as it goes: one line per finished image and, on a
// terminal, one bar in bytes (its total grows as the engine finds blobs to
// upload) with images done/total, rate and ETA; elsewhere, a plain line now
// and then. It is safe for concurrent use.
type Progress struct {
	w   io.Writer
	opt ProgressOptions

	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	images      int
	done        int
	planned     int64
	transferred int64
	lastDraw    time.Time
	stop        chan struct{}
	stopped     sync.WaitGroup
}

// NewProgress starts showing progress for a run of images jobs.
func NewProgress(w io.Writer, images int, opt ProgressOptions) *Progress {
	p := &Progress{w: w, opt: opt, images: images, stop: make(chan struct{})}
	if opt.Interval == 0 {
		p.opt.Interval = 10 * time.Second
	}
	switch {
	case opt.Quiet:
	case opt.Bar:
		theme := progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}
		if opt.Color {
			theme = progressbar.Theme{Saucer: "[green]=[reset]", SaucerHead: "[green]>[reset]", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}
		}
		// The total grows as blobs are found, so the bar must never look
		// finished (current ≥ max) before Finish: it stays one byte ahead.
		p.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			// no throttle here: Transferred throttles itself, and a bar
			// cleared for a result line must come back at once
			progressbar.OptionEnableColorCodes(opt.Color),
			progressbar.OptionSetTheme(theme),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionClearOnFinish(),
		)
	default:
		p.stopped.Add(1)
		go p.tick()
	}
	return p
}

func (p *Progress) describe() string { return fmt.Sprintf("%d/%d images", p.done, p.images) }

// tick prints a plain progress line every Interval (no terminal).
func (p *Progress) tick() {
	defer p.stopped.Done()
	t := time.NewTicker(p.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			fmt.Fprintf(p.w, "progress: %d/%d images, %s of %s uploaded so far\n", p.done, p.images, Bytes(p.transferred), Bytes(p.planned))
			p.mu.Unlock()
		}
	}
}

// Result prints a finished job above the bar.
func (p *Progress) Result(r engine.JobResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.opt.Quiet && r.Action != engine.Failed {
		return
	}
	line := Line(r)
	if p.opt.Color && r.Action == engine.Failed {
		line = "\x1b[31m" + line + "\x1b[0m"
	}
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.w, line)
	if p.bar != nil {
		p.bar.Describe(p.describe())
		p.draw()
	}
}

// Planned grows the bytes to move: a blob the engine is about to upload.
func (p *Progress) Planned(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.planned += n
	if p.bar != nil {
		p.bar.ChangeMax64(p.planned + 1)
	}
}

// Transferred counts bytes uploaded.
func (p *Progress) Transferred(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.transferred += n
	if p.bar != nil && time.Since(p.lastDraw) >= 100*time.Millisecond {
		p.draw()
	}
}

// draw renders the bar now (the caller holds p.mu).
func (p *Progress) draw() {
	_ = p.bar.Set64(p.transferred)
	p.lastDraw = time.Now()
}

// Finish removes the bar (or stops the plain lines) before the summary.
func (p *Progress) Finish() {
	p.mu.Lock()
	if p.bar != nil {
		_ = p.bar.Clear()
		p.bar = nil
	}
	p.mu.Unlock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.stopped.Wait()
}
