package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// helpArgs turns `help` and `help CMD…` into kong's --help.
func helpArgs(args []string) []string {
	if len(args) == 0 || args[0] != "help" {
		return args
	}
	return append(append([]string{}, args[1:]...), "--help")
}

// misuse catches what kong would misread or explain in its own terms: a
// flag no command has (its value would be taken for a command: `--porc 8`
// is "unknown command 8"), a flag given without its value, and a word
// where a command goes that is no command. The default command (sync)
// takes positional arguments only for a one-off copy (SRC DST, image
// references with a "/", ":" or "@"), so another word is a mistyped command
// ("did you mean"), or a rule file given without --images.
func misuse(app *kong.Application, name string, args []string) error {
	node, chosen := app.Node, false
	for i := 0; i < len(args); i++ {
		w := args[i]
		if w == "--" {
			return nil
		}
		if strings.HasPrefix(w, "-") && w != "-" {
			f := findFlag(node, chosen, w)
			if f == nil {
				if anyFlag(app, w) {
					continue // another command's: kong says where it belongs
				}
				return unknownFlag(node, chosen, w)
			}
			if takesValue(f, w) {
				if i+1 == len(args) {
					return fmt.Errorf("%s needs a value: %s", w, valueHint(f))
				}
				i++
			}
			continue
		}
		if chosen && len(node.Children) == 0 {
			continue // the command's own arguments
		}
		var names []string
		matched := false
		for _, c := range node.Children {
			if c.Hidden {
				continue
			}
			if c.Name == w || slices.Contains(c.Aliases, w) {
				node, chosen, matched = c, true, true
				break
			}
			names = append(names, c.Name)
		}
		if matched || chosen {
			continue // a command, or a word kong checks against what the command expects
		}
		if isRuleFile(w) {
			return fmt.Errorf("unexpected argument %q: the rule file is a flag: %s --images %s", w, name, w)
		}
		if strings.ContainsAny(w, "/:@") {
			return nil // an image reference: a one-off copy (sync SRC DST)
		}
		if s := closest(w, names); s != "" {
			return fmt.Errorf("unknown command %q; did you mean %q?", w, s)
		}
		return fmt.Errorf("unknown command %q (commands: %s; %s --help lists them)", w, strings.Join(names, ", "), name)
	}
	return nil
}

// anyFlag reports whether some command of the tree has the flag word.
func anyFlag(app *kong.Application, word string) bool {
	found := false
	_ = kong.Visit(app, func(n kong.Visitable, next kong.Next) error {
		if node, ok := n.(*kong.Node); ok && findFlag(node, true, word) != nil {
			found = true
		}
		return next(nil)
	})
	return found
}

// unknownFlag names a flag no command has, with the closest flag usable
// where it was given.
func unknownFlag(node *kong.Node, chosen bool, word string) error {
	flag, _, _ := strings.Cut(word, "=")
	var names []string
	for _, f := range flagsOf(node, chosen) {
		names = append(names, "--"+f.Name)
		for _, a := range f.Aliases {
			names = append(names, "--"+a)
		}
	}
	if strings.HasPrefix(flag, "--") {
		if s := closest(flag, names); s != "" {
			return fmt.Errorf("unknown flag %s, did you mean %s?", flag, s)
		}
	}
	return fmt.Errorf("unknown flag %s (%s --help lists the flags)", flag, commandPath(node))
}

// commandPath is how the command at node is invoked ("imagesync plan").
func commandPath(node *kong.Node) string {
	var words []string
	for n := node; n != nil; n = n.Parent {
		words = append([]string{n.Name}, words...)
	}
	return strings.Join(words, " ")
}

// valueHint says what kind of value a flag takes: "a number (default 5)".
func valueHint(f *kong.Flag) string {
	var s string
	switch {
	case f.Enum != "":
		s = "one of " + strings.Join(f.EnumSlice(), ", ")
	case f.Target.Kind() >= reflect.Int && f.Target.Kind() <= reflect.Float64 && f.Target.Type() != reflect.TypeOf(time.Duration(0)):
		s = "a number"
	case f.Target.Type() == reflect.TypeOf(time.Duration(0)):
		s = "a duration such as 30s or 2m"
	case f.PlaceHolder != "":
		s = f.PlaceHolder
	default:
		s = "a value"
	}
	if f.Default != "" {
		s += " (default " + f.Default + ")"
	}
	return s
}
func isRuleFile(w string) bool {
	switch strings.ToLower(filepath.Ext(w)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	st, err := os.Stat(w)
	return err == nil && st.Mode().IsRegular()
}

// closest returns the name within two edits (a swap of two neighbours
// counting as one) of w, or a name w is a prefix of; "" if none.
func closest(w string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if len(w) >= 2 && strings.HasPrefix(n, w) {
			return n
		}
		if d := editDistance(w, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent characters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// commonSyncFlags are the flags of the default command shown in the
// top-level help: `imagesync --images …` is how image-syncer users start.
var commonSyncFlags = []string{"images", "auth", "config", "proc", "retries", "arch", "os", "output-failed-images"}

// helpPrinter is kong's help, laid out as kubectl's: at the top level, the
// commands and the common flags of the default command; for a command, its
// usage line (imagesync sync [flags] [SRC DST...]), what it does, its own
// flags, a short block of the global flags, then examples and exit codes.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	sel := ctx.Selected()
	if sel == nil {
		if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
			return err
		}
		if ctx.Model.Node.DefaultCmd != nil {
			writeDefaultFlags(ctx.Stdout, ctx.Model.Node.DefaultCmd, ctx.Model.Name)
		}
		return nil
	}
	fmt.Fprintf(ctx.Stdout, "Usage: %s\n", commandUsage(sel))
	globals := ctx.Model.Node.Flags
	hidden := make([]bool, len(globals))
	for i, f := range globals {
		hidden[i], f.Hidden = f.Hidden, true
	}
	options.NoAppSummary = true
	err := kong.DefaultHelpPrinter(options, ctx)
	for i, f := range globals {
		f.Hidden = hidden[i]
	}
	if err != nil {
		return err
	}
	writeGlobalFlags(ctx.Stdout, globals, sel)
	if ex := commandExamples[sel.Name]; ex != "" {
		fmt.Fprintf(ctx.Stdout, "\n%s\n", strings.ReplaceAll(ex, "imagesync ", ctx.Model.Name+" "))
	}
	return nil
}

// commandUsage is the usage line of a command: its path, [flags], then its
// arguments (a one-off copy's as SRC DST...).
func commandUsage(cmd *kong.Node) string {
	s := commandPath(cmd)
	if len(cmd.Children) > 0 {
		return s + " <command> [flags]"
	}
	s += " [flags]"
	for _, p := range cmd.Positional {
		switch {
		case p.Name == "image":
			s += " [SRC DST...]"
		case p.Required:
			s += " <" + p.Name + ">"
		default:
			s += " [<" + p.Name + ">]"
		}
	}
	return s
}

// writeGlobalFlags prints the flags every command takes, one short line
// each (not --version under the version command).
func writeGlobalFlags(w io.Writer, globals []*kong.Flag, cmd *kong.Node) {
	fmt.Fprintln(w, "\nGlobal flags:")
	for _, f := range globals {
		if f.Hidden || (cmd.Name == "version" && f.Name == "version") {
			continue
		}
		left := "    --" + f.Name
		if f.Short != 0 {
			left = "-" + string(f.Short) + ", --" + f.Name
		}
		if !f.IsBool() {
			left += "=" + f.FormatPlaceHolder()
		}
		help := globalFlagHelp[f.Name]
		if help == "" {
			help = f.Help
		}
		fmt.Fprintf(w, "  %-24s %s\n", left, help)
	}
}

func writeDefaultFlags(w io.Writer, def *kong.Node, name string) {
	byName := map[string]*kong.Flag{}
	for _, f := range def.Flags {
		byName[f.Name] = f
	}
	fmt.Fprintf(w, "\nCommon flags of %s, the default command (%s %s --help lists all):\n", def.Name, name, def.Name)
	type row struct{ left, help string }
	var rows []row
	width := 0
	for _, n := range commonSyncFlags {
		f := byName[n]
		if f == nil {
			continue
		}
		left := "    --" + f.Name
		if f.Short != 0 {
			left = "-" + string(f.Short) + ", --" + f.Name
		}
		if !f.IsBool() {
			left += "=" + f.FormatPlaceHolder()
		}
		rows = append(rows, row{left, f.Help})
		width = max(width, len(left))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, wrap(r.help, max(30, 78-width), strings.Repeat(" ", width+4)))
	}
}

// wrap breaks text into lines of at most n columns, indenting the
// continuation lines.
func wrap(text string, n int, indent string) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(text) {
		if i > 0 && col+1+len(word) > n {
			b.WriteString("\n" + indent)
			col = 0
		} else if i > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

// stoppedAtCommand reports whether the arguments end with the selected
// command's name: `imagesync ledger`, a command that wants more words.
func stoppedAtCommand(ctx *kong.Context, args []string) bool {
	sel := ctx.Selected()
	return sel != nil && len(args) > 0 && (args[len(args)-1] == sel.Name || slices.Contains(sel.Aliases, args[len(args)-1]))
}

// nothingToDo is the answer to a bare invocation (or sync without rules):
// what can be given, and one example.
func nothingToDo(name string) string {
	return fmt.Sprintf(`nothing to copy: give one of
  %[1]s SRC DST [DST...]                a one-off copy, no file
  %[1]s --images FILE [--auth FILE]     image-syncer's rule file (--config FILE: its legacy file)
  %[1]s -f FILE                         an imagesync config file
for example:
  %[1]s quay.io/prometheus/node-exporter:v1.8.0 registry.example.com/prometheus/node-exporter
(%[1]s --help lists the commands and flags)`, name)
}
