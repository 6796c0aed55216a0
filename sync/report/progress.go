package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/imagesync/imagesync/sync/engine"
)

// ProgressOptions say how a run shows its progress.
type ProgressOptions struct {
	Bar      bool          // a live bar (a terminal that takes ANSI sequences, and --no-progress not given)
	Color    bool          // colors allowed (a terminal, not TERM=dumb, and NO_COLOR unset)
	Quiet    bool          // only failures and the summary
	Interval time.Duration // without a bar: a plain progress line this often (0: 10s)
	MaxLines int           // images in flight shown above the bar (0: 4)
	JSON     bool          // --log-format json: each line a JSON object (no bar)
}

// Progress shows a sync as it goes: one line per finished image and, on a
// terminal, a live block redrawn in place below them — the images in flight
// with their bytes, images done/total with failures, and a bar of the bytes
// uploaded out of the bytes to upload, with rate and ETA. The engine
// resolves every image before the first upload, so that total is known
// early and only shrinks (blobs found present or mounted leave it). Without
// a terminal, a plain line now and then says the same. Jobs that never
// started (Ctrl-C) are counted, not listed. It is safe for concurrent use.
type Progress struct {
	c   *Console
	opt ProgressOptions
	now func() time.Time

	mu         sync.Mutex
	images     int // jobs
	done       int // jobs with a result
	failed     int
	notStarted int
	units      int // source references to resolve
	resolved   int
	ready      bool  // every source reference is resolved
	work       int64 // bytes to upload (only shrinks once ready)
	uploaded   int64
	inflight   map[string]*imageBytes
	byImage    map[string]*imageBytes
	start      time.Time
	readyAt    time.Time // when every source was resolved
	firstByte  time.Time // when the first byte was uploaded
	samples    []sample  // recent (time, uploaded) for the rate
	bar        *progressbar.ProgressBar
	barWidth   int
	lastDraw   time.Time
	stop       chan struct{}
	stopped    sync.WaitGroup
	finished   bool
}

type imageBytes struct {
	name       string
	dsts       []string // where it goes (two destinations of one source told apart)
	work, done int64
	started    time.Time
}

// row is "SRC → DST" (", DST2" or " (+N more)" for more), in at most
// room columns: each side keeps its end (the repository and tag).
func (im *imageBytes) row(room int) string {
	if len(im.dsts) == 0 {
		return tail(im.name, room)
	}
	dst := im.dsts[0]
	switch n := len(im.dsts); {
	case n == 2:
		dst += ", " + im.dsts[1]
	case n > 2:
		dst += fmt.Sprintf(" (+%d more)", n-1)
	}
	s := im.name + " → " + dst
	if utf8.RuneCountInString(s) <= room || room <= 8 {
		return s
	}
	half := (room - 3) / 2
	return tail(im.name, half) + " → " + tail(dst, room-3-half)
}

// tail keeps the end of s in n columns, with "…" for what is cut.
func tail(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

type sample struct {
	t time.Time
	n int64
}

// NewProgress starts showing progress for a run of images jobs on c.
func NewProgress(c *Console, images int, opt ProgressOptions) *Progress {
	p := &Progress{c: c, opt: opt, images: images, now: time.Now, stop: make(chan struct{}),
		inflight: map[string]*imageBytes{}, byImage: map[string]*imageBytes{}}
	p.start = p.now()
	if p.opt.Interval == 0 {
		p.opt.Interval = 10 * time.Second
	}
	if p.opt.MaxLines == 0 {
		p.opt.MaxLines = 4
	}
	if !c.Live() || opt.Quiet {
		p.opt.Bar = false
	}
	switch {
	case opt.Quiet:
	case p.opt.Bar:
		p.stopped.Add(1)
		go p.tick(200 * time.Millisecond)
	default:
		p.stopped.Add(1)
		go p.tick(p.opt.Interval)
	}
	return p
}

// tick redraws the bar (rate and ETA move even when no byte does), or
// prints a plain line, every d.
func (p *Progress) tick(d time.Duration) {
	defer p.stopped.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			switch {
			case p.opt.Bar:
				p.draw()
			case p.opt.JSON:
				p.c.Println(p.jsonLocked())
			default:
				p.c.Println("progress: " + p.plainLocked())
			}
			p.mu.Unlock()
		}
	}
}

// Result prints a finished job above the bar; a job that never started is
// only counted.
func (p *Progress) Result(r engine.JobResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Subject == "" { // a referrer rides with its image: not one of the images counted
		p.done++
	}
	switch {
	case r.NotStarted:
		p.notStarted++
		return
	case r.Action == engine.Failed && r.Subject == "":
		p.failed++
	}
	if p.opt.Quiet && r.Action != engine.Failed {
		return
	}
	line := Line(r)
	if p.opt.JSON {
		line = JobLogLine(r)
	}
	if p.opt.Color && r.Action == engine.Failed && !p.opt.JSON {
		line = "\x1b[31m" + line + "\x1b[0m"
	}
	p.c.Println(line)
}

// Event takes the engine's progress events (engine.Options.OnProgress).
func (p *Progress) Event(ev engine.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Kind {
	case engine.ProgressResolving:
		p.units = ev.Images
	case engine.ProgressResolved:
		p.resolved++
	case engine.ProgressReady:
		p.ready, p.readyAt = true, p.now()
	case engine.ProgressStarted:
		im := p.image(ev.Image)
		for _, d := range ev.Destinations {
			if !slices.Contains(im.dsts, d) {
				im.dsts = append(im.dsts, d)
			}
		}
		if _, ok := p.inflight[ev.Image]; !ok {
			im.started = p.now()
			p.inflight[ev.Image] = im
		}
	case engine.ProgressFinished:
		delete(p.inflight, ev.Image)
	case engine.ProgressBytes:
		im := p.image(ev.Image)
		im.work += ev.Work
		im.done += ev.Done
		p.work += ev.Work
		p.uploaded += ev.Done
		if ev.Done != 0 {
			if p.firstByte.IsZero() {
				p.firstByte = p.now()
			}
			p.sample()
		}
	}
	if p.opt.Bar && (ev.Kind != engine.ProgressBytes || p.now().Sub(p.lastDraw) >= 100*time.Millisecond) {
		p.draw()
	}
}

func (p *Progress) image(name string) *imageBytes {
	im, ok := p.byImage[name]
	if !ok {
		im = &imageBytes{name: name}
		p.byImage[name] = im
	}
	return im
}

// sample keeps the last five seconds of (time, uploaded) for the rate, at
// most ten a second (the newest replaces a sample younger than 100ms).
func (p *Progress) sample() {
	now := p.now()
	if n := len(p.samples); n > 1 && now.Sub(p.samples[n-2].t) < 100*time.Millisecond {
		p.samples[n-1] = sample{now, p.uploaded}
		return
	}
	p.samples = append(p.samples, sample{now, p.uploaded})
	cut := 0
	for cut < len(p.samples)-2 && now.Sub(p.samples[cut].t) > 5*time.Second {
		cut++
	}
	p.samples = p.samples[cut:]
}

// rate is bytes per second over the recent samples (0: unknown yet).
func (p *Progress) rate() float64 {
	if len(p.samples) < 2 {
		return 0
	}
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	dt := p.now().Sub(first.t).Seconds()
	if dt < 0.5 {
		dt = last.t.Sub(first.t).Seconds()
	}
	if dt <= 0 {
		return 0
	}
	return float64(last.n-first.n) / dt
}

// eta is the time left ("?" while unknown): the bytes left at the recent
// rate, measured over a second at least (the first bursts fill buffers,
// not the network), and no less than the images left at the pace images
// have finished (what requests cost — manifests, a --rate — is in it).
func (p *Progress) eta() string {
	left := p.work - p.uploaded
	var d time.Duration
	if left > 0 {
		r := p.rate()
		if r <= 0 || !p.ready || p.firstByte.IsZero() || p.now().Sub(p.firstByte) < time.Second {
			return "?"
		}
		d = time.Duration(float64(left) / r * float64(time.Second))
	}
	if p.ready && p.done > 0 && p.images > p.done {
		per := p.now().Sub(p.readyAt) / time.Duration(p.done)
		d = max(d, per*time.Duration(p.images-p.done))
	}
	if d <= 0 {
		return "0s"
	}
	if d > time.Minute {
		d = d.Round(time.Second)
	} else {
		d = d.Round(100 * time.Millisecond)
	}
	return d.String()
}

func (p *Progress) percent() int {
	if p.work <= 0 {
		return 0
	}
	return int(p.uploaded * 100 / p.work)
}

// counts is "7/20 images, 1 failed".
func (p *Progress) counts() string {
	s := fmt.Sprintf("%d/%d images", p.done, p.images)
	if p.failed > 0 {
		s += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.notStarted > 0 {
		s += fmt.Sprintf(", %d not started", p.notStarted)
	}
	return s
}

// jsonLocked is the progress as a --log-format json line.
func (p *Progress) jsonLocked() string {
	f := struct {
		Done       int    `json:"done"`
		Images     int    `json:"images"`
		Failed     int    `json:"failed"`
		NotStarted int    `json:"notStarted"`
		Resolving  bool   `json:"resolving,omitempty"`
		Uploaded   int64  `json:"uploaded"`
		Work       int64  `json:"work"`
		Percent    int    `json:"percent"`
		Rate       int64  `json:"bytesPerSecond"`
		ETA        string `json:"eta,omitempty"`
	}{p.done, p.images, p.failed, p.notStarted, !p.ready && p.units > 0, p.uploaded, p.work, p.percent(), int64(p.rate()), ""}
	if f.Rate > 0 {
		f.ETA = p.eta()
	}
	return LogLine("INFO", "progress", f)
}

// plainLocked is the one-line progress for logs and dumb terminals.
func (p *Progress) plainLocked() string {
	if !p.ready && p.units > 0 {
		return fmt.Sprintf("%s; resolving %d/%d source images", p.counts(), p.resolved, p.units)
	}
	s := fmt.Sprintf("%s; %s of %s uploaded (%d%%)", p.counts(), Bytes(p.uploaded), Bytes(p.work), p.percent())
	if r := p.rate(); r > 0 {
		s += fmt.Sprintf(", %s/s, ETA %s", Bytes(int64(r)), p.eta())
	}
	return s
}

// block is what the live display shows: the images in flight with their
// bytes, the counts, and the bar.
func (p *Progress) block() []string {
	var lines []string
	flight := make([]*imageBytes, 0, len(p.inflight))
	for _, im := range p.inflight {
		flight = append(flight, im)
	}
	sort.Slice(flight, func(a, b int) bool {
		if !flight[a].started.Equal(flight[b].started) {
			return flight[a].started.Before(flight[b].started)
		}
		return flight[a].name < flight[b].name
	})
	head := p.counts()
	if len(flight) > 0 {
		head += fmt.Sprintf(", %d in flight", len(flight))
	}
	lines = append(lines, head)
	for i, im := range flight {
		if i == p.opt.MaxLines {
			lines = append(lines, fmt.Sprintf("  … and %d more", len(flight)-i))
			break
		}
		bytes := "manifests"
		if im.work > 0 {
			bytes = fmt.Sprintf("%s/%s", Bytes(im.done), Bytes(im.work))
		}
		// On a narrow terminal the names give way (their starts first),
		// not the bytes.
		lines = append(lines, fmt.Sprintf("  %s  %s", im.row(p.c.Width()-1-4-len(bytes)), bytes))
	}
	if !p.ready {
		lines = append(lines, fmt.Sprintf("resolving %d/%d source images: %s to upload so far", p.resolved, p.units, Bytes(p.work)))
		return lines
	}
	lines = append(lines, p.barLine()+" ETA "+p.eta())
	return lines
}

// barLine renders the bar with schollz/progressbar: bar, percentage, bytes
// done/total and rate.
func (p *Progress) barLine() string {
	if p.work <= 0 {
		return fmt.Sprintf("nothing left to upload (%s uploaded)", Bytes(p.uploaded))
	}
	// "100% [" + "] (123.4 MiB/456.7 MiB, 12.3 MiB/s) ETA 1h2m3s": 52 columns
	// around the bar, which gets what is left (5 to 40).
	width := min(max(p.c.Width()-53, 5), 40)
	if p.bar == nil || p.barWidth != width || (p.bar.IsFinished() && p.uploaded < p.work) {
		p.newBar(width)
	}
	if p.bar.GetMax64() != p.work {
		p.bar.ChangeMax64(p.work)
	}
	_ = p.bar.Set64(min(p.uploaded, p.work))
	return strings.TrimSpace(strings.TrimPrefix(p.bar.String(), "\r"))
}

func (p *Progress) newBar(width int) {
	theme := progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}
	p.bar = progressbar.NewOptions64(max(p.work, 1),
		progressbar.OptionSetWriter(io.Discard), // rendered here: String() is drawn by the Console
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(false), // its ETA reads 0s until it has a rate; ours says ?
		progressbar.OptionSetWidth(width),
		progressbar.OptionSetTheme(theme),
	)
	p.barWidth = width
	_ = p.bar.Set64(min(p.uploaded, p.work))
}

// draw redraws the live block (the caller holds p.mu).
func (p *Progress) draw() {
	if p.finished {
		return
	}
	p.c.SetBlock(p.block())
	p.lastDraw = p.now()
}

// Finish removes the live block, leaving the bar's last state as a line
// when bytes were uploaded, or stops the plain lines, before the summary.
func (p *Progress) Finish() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.stopped.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opt.Bar && !p.finished && p.uploaded > 0 && p.ready {
		p.c.SetBlock([]string{p.barLine() + " in " + p.now().Sub(p.start).Round(100*time.Millisecond).String()})
		p.c.Keep()
	}
	p.finished = true
	p.c.Close()
}
