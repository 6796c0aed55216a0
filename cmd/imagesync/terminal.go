package main

import (
	"io"
	"os"

	"golang.org/x/term"

	"github.com/imagesync/imagesync/sync/report"
)

// newConsole writes to w (stderr): live (bar, colors, cursor movement) only
// when tty, the process's real stderr, is a terminal that takes ANSI/VT
// sequences — not TERM=dumb, and on Windows only once virtual-terminal
// processing is on; elsewhere plain lines.
func newConsole(w, tty io.Writer, e env) *report.Console {
	f, ok := tty.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return report.NewConsole(w, false, nil)
	}
	if t, _ := e.lookup("TERM"); t == "dumb" {
		return report.NewConsole(w, false, nil)
	}
	if !enableVT(f) {
		return report.NewConsole(w, false, nil)
	}
	return report.NewConsole(w, true, func() int {
		cols, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return cols
	})
}
