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
