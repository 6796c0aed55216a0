package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/alecthomas/kong"
)

// splitShortValues rewrites image-syncer's (pflag's) `-p=6` as `-p` `6` for
// every short flag that takes a value: kong would read the value as "=6".
// Bool short flags, long flags and everything after "--" are left alone.
func splitShortValues(app *kong.Application, args []string) []string {
	valued := map[rune]bool{}
	_ = kong.Visit(app, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok && f.Short != 0 && !f.IsBool() && !f.IsCounter() {
			valued[f.Short] = true
		}
		return next(nil)
	})
	out := make([]string, 0, len(args)+2)
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) >= 3 && a[0] == '-' && a[2] == '=' && valued[rune(a[1])] {
			out = append(out, a[:2], strings.TrimPrefix(a[2:], "="))
			continue
		}
		out = append(out, a)
	}
	return out
}

// imagesFormatMapper decodes --output-images-format: json or yaml in any
// case, and yml for yaml, as image-syncer takes them.
var imagesFormatMapper = kong.MapperFunc(func(ctx *kong.DecodeContext, target reflect.Value) error {
	var s string
	if err := ctx.Scan.PopValueInto("format", &s); err != nil {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "json":
		target.SetString("json")
	case "yaml", "yml":
		target.SetString("yaml")
	default:
		return fmt.Errorf("must be json or yaml (or yml), got %q", s)
	}
	return nil
})

// commandIndex is the index in args of the command word (the first word
// that is not a flag or a flag's value before "--"), or -1.
func commandIndex(app *kong.Application, args []string) int {
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch {
		case w == "--":
			return -1
		case strings.HasPrefix(w, "-") && w != "-":
			if f := findFlag(app.Node, false, w); f != nil && takesValue(f, w) {
				i++
			}
		default:
			return i
		}
	}
	return -1
}

// dryRunAsPlan reads skopeo's and kubectl's --dry-run on sync (given or
// default) as the plan command, which shows what sync would do and writes
// nothing. It returns the rewritten arguments and whether --dry-run was
// there; on any other command --dry-run is left for the unknown-flag message.
func dryRunAsPlan(app *kong.Application, args []string) ([]string, bool) {
	ci := commandIndex(app, args)
	cmd := ""
	if ci >= 0 {
		cmd = args[ci]
	}
	switch cmd {
	case "sync", "copy", "cp", "plan":
	default:
		if ci >= 0 && strings.ContainsAny(cmd, "/:@") { // a one-off SRC DST: sync
			ci, cmd = -1, ""
			break
		}
		if ci >= 0 {
			return args, false
		}
	}
	out := make([]string, 0, len(args)+1)
	found := false
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if a == "--dry-run" || a == "--dry-run=true" {
			found = true
			continue
		}
		if i == ci {
			a = "plan"
		}
		out = append(out, a)
	}
	if !found {
		return args, false
	}
	if ci < 0 {
		out = append([]string{"plan"}, out...)
	}
	return out, cmd != "plan"
}
