// Package vtscreen replays what a program wrote to a terminal onto a grid
// of cells, for tests: the subset of VT sequences imagesync's console uses
// (CR, LF, cursor up/down/column moves, erase line, SGR colors ignored) and
// a terminal's automatic wrap at its last column. What is left on the
// screen is what a person would see, stale lines included.
package vtscreen

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Screen is a terminal of a fixed width and unbounded height.
type Screen struct {
	width    int
	rows     [][]rune
	row, col int
	wrapNext bool // the last column was written: the next rune wraps
}

// New returns an empty screen width columns wide.
func New(width int) *Screen { return &Screen{width: width, rows: [][]rune{nil}} }

// Render replays out on a new screen and returns its lines.
func Render(out string, width int) []string {
	s := New(width)
	s.Write([]byte(out))
	return s.Lines()
}

func (s *Screen) line() []rune {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
	return s.rows[s.row]
}

func (s *Screen) put(r rune) {
	if s.wrapNext {
		s.row++
		s.col = 0
		s.wrapNext = false
	}
	l := s.line()
	for len(l) <= s.col {
		l = append(l, ' ')
	}
	l[s.col] = r
	s.rows[s.row] = l
	if s.col == s.width-1 {
		s.wrapNext = true
	} else {
		s.col++
	}
}

// Write implements io.Writer. A pty turns "\n" into "\r\n" on output, and
// so does this screen.
func (s *Screen) Write(p []byte) (int, error) {
	b := string(p)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\r':
			s.col, s.wrapNext = 0, false
			i++
		case c == '\n':
			s.row++
			s.col, s.wrapNext = 0, false
			s.line()
			i++
		case c == 0x1b && i+1 < len(b) && b[i+1] == '[':
			j := i + 2
			for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == ';' || b[j] == '?') {
				j++
			}
			if j >= len(b) {
				return len(p), nil
			}
			s.csi(b[i+2:j], b[j])
			i = j + 1
		case c < 0x20:
			i++
		default:
			r, n := utf8.DecodeRuneInString(b[i:])
			s.put(r)
			i += n
		}
	}
	return len(p), nil
}

func (s *Screen) csi(params string, final byte) {
	n, err := strconv.Atoi(strings.SplitN(params, ";", 2)[0])
	if err != nil || n == 0 {
		n = 1
	}
	s.wrapNext = false
	switch final {
	case 'A':
		s.row = max(0, s.row-n)
	case 'B':
		s.row += n
		s.line()
	case 'C':
		s.col = min(s.width-1, s.col+n)
	case 'D':
		s.col = max(0, s.col-n)
	case 'F':
		s.row = max(0, s.row-n)
		s.col = 0
	case 'E':
		s.row += n
		s.col = 0
		s.line()
	case 'G':
		s.col = min(s.width-1, n-1)
	case 'K':
		l := s.line()
		switch params {
		case "", "0":
			if s.col < len(l) {
				s.rows[s.row] = l[:s.col]
			}
		case "1":
			for i := 0; i <= s.col && i < len(l); i++ {
				l[i] = ' '
			}
		case "2":
			s.rows[s.row] = nil
		}
	case 'J':
		if params == "2" {
			s.rows = [][]rune{nil}
			s.row, s.col = 0, 0
		}
	}
}

// Lines returns the screen, trailing spaces and trailing empty lines cut.
func (s *Screen) Lines() []string {
	out := make([]string, len(s.rows))
	for i, r := range s.rows {
		out[i] = strings.TrimRight(string(r), " ")
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}
