package vtscreen

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		width     int
		want      []string
	}{
		{"lines", "a\nb\n", 10, []string{"a", "b"}},
		{"carriage return overwrites", "abcdef\rxy", 10, []string{"xycdef"}},
		{"wrap at the last column", "abcdefgh", 5, []string{"abcde", "fgh"}},
		{"no wrap before the next rune", "abcde\n", 5, []string{"abcde"}},
		{"a wrapped line leaves a stale row on redraw", "0123456789\r\x1b[2Knew", 6, []string{"012345", "new"}},
		{"erase and move up", "one\ntwo\r\x1b[2K\x1b[1A\x1b[2Kthree", 10, []string{"three"}},
		{"colors are invisible", "\x1b[31mred\x1b[0m", 10, []string{"red"}},
		{"erase to the end", "abcdef\r\x1b[3C\x1b[K", 10, []string{"abc"}},
	} {
		if got := Render(tc.out, tc.width); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
