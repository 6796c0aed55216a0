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

// terminalCols returns the width of w when it is a terminal (0 otherwise:
// a pipe or a file takes lines of any length).
func terminalCols(w io.Writer) func() int {
	return func() int {
		f, ok := w.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return 0
		}
		cols, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return cols
	}
}

// cols is the width of the run's stdout when it is a terminal, else 0.
func (rc *runContext) cols() int {
	if rc.stdoutCols == nil {
		return 0
	}
	return rc.stdoutCols()
}
