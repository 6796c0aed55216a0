package report

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// Console is a terminal's stderr shared by logs, result lines and a live
// block (the progress display): a line written through it goes above the
// block, which is then redrawn below it, so nothing is ever printed into the
// middle of a bar. Every block line is cut to the terminal's width, so no
// line wraps and a redraw never leaves a stale line behind. Without live
// (not a terminal, or TERM=dumb) it writes lines through and shows no block.
// It is safe for concurrent use.
type Console struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	width   func() int // columns; ≤ 0 when unknown
	block   []string   // the block as it is on screen
	partial []byte     // an unfinished line written through Write
}

// NewConsole returns a console over w. live allows cursor movement (a
// terminal that understands ANSI/VT sequences); width reports its columns.
func NewConsole(w io.Writer, live bool, width func() int) *Console {
	if width == nil {
		width = func() int { return 0 }
	}
	return &Console{w: w, live: live, width: width}
}

// Live reports whether the console can show a live block.
func (c *Console) Live() bool { return c != nil && c.live }

// Width returns the terminal's columns (80 when unknown).
func (c *Console) Width() int {
	if w := c.width(); w > 0 {
		return w
	}
	return 80
}

// Write prints complete lines above the block; an unfinished last line
// waits for its end (or Close).
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	i := bytes.LastIndexByte(c.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := c.partial[:i+1]
	err := c.above(lines)
	c.partial = append(c.partial[:0], c.partial[i+1:]...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Println prints one line above the block.
func (c *Console) Println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.above([]byte(line + "\n"))
}

// Notice prints a line that must start at the beginning of a line even if
// something (another program, an unfinished write) left the cursor in the
// middle of one: the Ctrl-C message.
func (c *Console) Notice(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.partial = append(c.partial, '\n')
		_ = c.above(c.partial)
		c.partial = c.partial[:0]
	}
	_ = c.above([]byte(line + "\n"))
}

// SetBlock replaces the live block with lines (nothing when not live).
func (c *Console) SetBlock(lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return
	}
	var b strings.Builder
	c.clear(&b)
	c.block = c.fit(lines)
	c.draw(&b)
	_, _ = io.WriteString(c.w, b.String())
}

// Keep leaves the block on screen as ordinary lines.
func (c *Console) Keep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.block) > 0 {
		_, _ = io.WriteString(c.w, "\n")
		c.block = nil
	}
}

// Close removes the block and prints an unfinished last line.
func (c *Console) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	c.clear(&b)
	c.block = nil
	if len(c.partial) > 0 {
		b.Write(c.partial)
		b.WriteByte('\n')
		c.partial = c.partial[:0]
	}
	_, _ = io.WriteString(c.w, b.String())
}

// above writes lines (ending in a newline) above the block, in one write.
func (c *Console) above(lines []byte) error {
	if len(c.block) == 0 {
		_, err := c.w.Write(lines)
		return err
	}
	var b strings.Builder
	c.clear(&b)
	b.Write(lines)
	c.draw(&b)
	_, err := io.WriteString(c.w, b.String())
	return err
}

// clear erases the block from the screen, leaving the cursor at the start
// of its first line. The block's cursor sits at the end of its last line.
func (c *Console) clear(b *strings.Builder) {
	if len(c.block) == 0 {
		return
	}
	b.WriteString("\r\x1b[2K")
	for range len(c.block) - 1 {
		b.WriteString("\x1b[1A\x1b[2K")
	}
}

func (c *Console) draw(b *strings.Builder) {
	b.WriteString(strings.Join(c.block, "\n"))
}

// fit cuts each line to one column less than the terminal's width: a line
// that filled the last column could wrap, and a wrapped line is what
// leaves stale copies behind on redraw.
func (c *Console) fit(lines []string) []string {
	max := c.Width() - 1
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = truncate(l, max)
	}
	return out
}

// truncate cuts s (which holds no escape sequences) to n columns.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n == 1 {
		return string(r[:1])
	}
	return string(r[:n-1]) + "…"
}
