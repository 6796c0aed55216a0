package client

import (
	"strings"
	"testing"
)

// Content-Range is untrusted input: only "bytes START-END/TOTAL" (or "/*")
// with numbers in order is read.
func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 10-99/100", 10, 99, 100, true},
		{"BYTES 0-0/1", 0, 0, 1, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"", 0, 0, 0, false},
		{"bytes", 0, 0, 0, false},
		{"bytes 10-99", 0, 0, 0, false},
		{"items 10-99/100", 0, 0, 0, false},
		{"bytes 99-10/100", 0, 0, 0, false},                // out of order
		{"bytes 10-100/100", 0, 0, 0, false},               // past the total
		{"bytes -10-99/100", 0, 0, 0, false},               // a sign
		{"bytes +10-99/100", 0, 0, 0, false},               // a sign
		{"bytes 10-99/1e3", 0, 0, 0, false},                // not digits
		{"bytes  10-99/100", 0, 0, 0, false},               // two spaces
		{"bytes */100", 0, 0, 0, false},                    // unsatisfied-range form
		{"bytes 1-2/99999999999999999999", 0, 0, 0, false}, // overflows
		{"bytes 1-2/" + strings.Repeat("0", 200) + "5", 0, 0, 0, false},
	}
	for _, c := range cases {
		s, e, n, ok := parseContentRange(c.in)
		if ok != c.ok || (ok && (s != c.start || e != c.end || n != c.total)) {
			t.Errorf("%q: %d-%d/%d %v, want %d-%d/%d %v", c.in, s, e, n, ok, c.start, c.end, c.total, c.ok)
		}
	}
}
