package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// Cobra's completion directives, which the Docker CLI and kubectl expect
// from a plugin's `__complete` answer (and our own shell scripts read).
const (
	directiveDefault   = 0 // let the shell complete file names
	directiveNoFile    = 4 // no file names
	directiveNoSpace   = 2
	directiveFilterDir = 16
)

// Values offered for flags whose values are well known.
var knownValues = map[string][]string{
	"os":       {"linux", "windows", "darwin", "freebsd"},
	"arch":     {"amd64", "arm64", "arm", "arm:v7", "arm:v6", "386", "ppc64le", "s390x", "riscv64"},
	"platform": {"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64", "windows/amd64"},
}

// listValued are the flags that take comma-separated lists of known values:
// the value after the last comma is completed.
var listValued = map[string]bool{"os": true, "arch": true, "platform": true}

// ruleFileFlags take a rule, auth or config file: .yaml, .yml or .json
// (not ledger.db.lock and the like), and folders to go into.
var ruleFileFlags = map[string]bool{"images": true, "auth": true, "config": true, "file": true}

// writeCompletions answers a completion request in cobra's format: one
// candidate per line, then ":<directive>". words are the arguments after
// the program name, the last one being the word under the cursor.
func writeCompletions(w io.Writer, app *kong.Application, words []string) {
	cands, directive := complete(app, words)
	for _, c := range cands {
		fmt.Fprintln(w, c)
	}
	fmt.Fprintf(w, ":%d\n", directive)
}

func complete(app *kong.Application, words []string) ([]string, int) {
	if len(words) == 0 {
		words = []string{""}
	}
	partial, prior := words[len(words)-1], words[:len(words)-1]
	node := app.Node
	chosen := false
	positional := 0 // arguments given to the chosen command
	for i := 0; i < len(prior); i++ {
		w := prior[i]
		if strings.HasPrefix(w, "-") {
			if f := findFlag(node, chosen, w); f != nil && takesValue(f, w) {
				i++ // its value
			}
			continue
		}
		if chosen {
			positional++
			continue
		}
		for _, c := range node.Children {
			if c.Name == w && !c.Hidden {
				node, chosen = c, true
				break
			}
		}
	}
	if n := len(prior); n > 0 {
		if f := findFlag(node, chosen, prior[n-1]); f != nil && takesValue(f, prior[n-1]) {
			return flagValues(f, partial)
		}
	}
	if name, value, ok := strings.Cut(partial, "="); ok && strings.HasPrefix(name, "--") {
		if f := findFlag(node, chosen, name); f != nil && !f.IsBool() {
			vals, d := flagValues(f, value)
			for i := range vals {
				vals[i] = name + "=" + vals[i]
			}
			return vals, d
		}
	}
	var out []string
	if strings.HasPrefix(partial, "-") {
		for _, f := range flagsOf(node, chosen) {
			if n := "--" + f.Name; strings.HasPrefix(n, partial) {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out, directiveNoFile
	}
	if chosen && positional < len(node.Positional) { // e.g. completion <TAB>: the shells
		if p := node.Positional[positional]; p.Enum != "" {
			for _, v := range p.EnumSlice() {
				if strings.HasPrefix(v, partial) {
					out = append(out, v)
				}
			}
		}
	}
	for _, c := range node.Children { // subcommands (`ledger export`), at the root or below
		if c.Type == kong.CommandNode && !c.Hidden && strings.HasPrefix(c.Name, partial) {
			out = append(out, c.Name+"\t"+commandBlurb(c)) // cobra's "candidate<TAB>description"
		}
	}
	return out, directiveNoFile
}

// commandBlurbs are the descriptions shells show beside the commands (zsh
// and fish, as for docker's own commands).
var commandBlurbs = map[string]string{
	"sync":       "Copy images (the default command)",
	"plan":       "Show what sync would do, writing nothing",
	"verify":     "Check that the destinations hold the images",
	"convert":    "Print the config file equal to image-syncer's files",
	"job":        "Print or apply a sharded Kubernetes Job",
	"status":     "Add up the results of a Kubernetes job's shards",
	"ledger":     "Look into the digest ledger",
	"version":    "Print the version",
	"completion": "Print a shell completion script",
}

// commandBlurb is a command's description for completion: its own line,
// else its help up to the first colon or full stop.
func commandBlurb(c *kong.Node) string {
	if b := commandBlurbs[c.Name]; b != "" && c.Parent != nil && c.Parent.Parent == nil {
		return b
	}
	h := c.Help
	if i := strings.IndexAny(h, ":.("); i > 0 {
		h = h[:i]
	}
	return strings.TrimSpace(h)
}

// flagsOf returns the flags usable at node: its own and its parents'; at
// the root, those of the default command too.
func flagsOf(node *kong.Node, chosen bool) []*kong.Flag {
	var out []*kong.Flag
	for n := node; n != nil; n = n.Parent {
		for _, f := range n.Flags {
			if !f.Hidden {
				out = append(out, f)
			}
		}
	}
	if !chosen && node.DefaultCmd != nil {
		for _, f := range node.DefaultCmd.Flags {
			if !f.Hidden {
				out = append(out, f)
			}
		}
	}
	return out
}

func findFlag(node *kong.Node, chosen bool, word string) *kong.Flag {
	name, _, _ := strings.Cut(word, "=")
	for _, f := range flagsOf(node, chosen) {
		if name == "--"+f.Name || (f.Short != 0 && name == "-"+string(f.Short)) {
			return f
		}
		for _, a := range f.Aliases {
			if name == "--"+a {
				return f
			}
		}
	}
	return nil
}

func takesValue(f *kong.Flag, word string) bool { return !f.IsBool() && !strings.Contains(word, "=") }

func flagValues(f *kong.Flag, partial string) ([]string, int) {
	var vals []string
	if listValued[f.Name] {
		if i := strings.LastIndex(partial, ","); i >= 0 {
			head := partial[:i+1]
			out, d := flagValues(&kong.Flag{Value: &kong.Value{Name: f.Name}}, partial[i+1:])
			for j := range out {
				out[j] = head + out[j]
			}
			return out, d
		}
	}
	if ruleFileFlags[f.Name] {
		return configFiles(partial)
	}
	switch {
	case f.Enum != "":
		vals = f.EnumSlice()
	case knownValues[f.Name] != nil:
		vals = knownValues[f.Name]
	case f.Tag != nil && f.Tag.Type == "path":
		return nil, directiveDefault // file names
	default:
		return nil, directiveNoFile
	}
	var out []string
	for _, v := range vals {
		if strings.HasPrefix(v, partial) {
			out = append(out, v)
		}
	}
	return out, directiveNoFile
}

// configFiles lists the .yaml, .yml and .json files and the folders whose
// path starts with partial (hidden ones only when asked for).
func configFiles(partial string) ([]string, int) {
	dir, base := filepath.Split(partial)
	entries, err := os.ReadDir(cmp.Or(dir, "."))
	if err != nil {
		return nil, directiveNoFile
	}
	var out []string
	dirs := false
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(cmp.Or(dir, "."), name)); err == nil {
				isDir = st.IsDir()
			}
		}
		switch ext := strings.ToLower(filepath.Ext(name)); {
		case isDir:
			out, dirs = append(out, dir+name+"/"), true
		case ext == ".yaml" || ext == ".yml" || ext == ".json":
			out = append(out, dir+name)
		}
	}
	sort.Strings(out)
	if dirs {
		return out, directiveNoFile | directiveNoSpace // a folder: go on typing in it
	}
	return out, directiveNoFile
}

// CompletionCmd prints a completion script that asks the binary itself.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish,powershell" help:"Shell: ${enum}."`
}

// Help implements kong's detailed help.
func (CompletionCmd) Help() string {
	return `Examples:
  source <(imagesync completion bash)                 # bash, this shell
  imagesync completion zsh > "${fpath[1]}/_imagesync"  # zsh
  imagesync completion fish > ~/.config/fish/completions/imagesync.fish
  imagesync completion powershell | Out-String | Invoke-Expression

docker sync and kubectl imagesync complete through the Docker CLI's and
kubectl's own completion (kubectl needs kubectl_complete-imagesync on PATH,
which make install puts there).`
}

// Run implements the command.
func (c CompletionCmd) Run(rc *runContext) error {
	script := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion, "powershell": powershellCompletion}[c.Shell]
	_, err := io.WriteString(rc.stdout, strings.ReplaceAll(script, "@PROG@", "imagesync"))
	return err
}

// bashCompletion reads the line itself rather than COMP_WORDS, which bash
// splits at ':' and '=' (COMP_WORDBREAKS): `--arch arm:<TAB>` and
// `--os=l<TAB>` are asked about whole, and the part of each candidate
// before the last break is cut, since bash replaces only what follows it.
const bashCompletion = `# bash completion for @PROG@ (asks @PROG@ __complete)
_@PROG@_complete() {
    local line="${COMP_LINE:0:COMP_POINT}" out directive c cur pre
    local -a words
    read -ra words <<< "$line"
    [[ "$line" =~ [[:space:]]$ ]] && words+=("")
    cur="${words[${#words[@]}-1]}"
    pre=""
    case "$cur" in *[:=]*) pre="${cur%"${cur##*[:=]}"}" ;; esac
    out=$("${words[0]}" __complete "${words[@]:1}" 2>/dev/null) || return
    directive=${out##*:}
    COMPREPLY=()
    while IFS= read -r c; do
        case "$c" in :*|"") continue ;; esac
        c="${c%%$'\t'*}"
        COMPREPLY+=("${c#"$pre"}")
    done <<< "$out"
    if [ ${#COMPREPLY[@]} -eq 0 ] && [ $((directive & 4)) -ne 0 ]; then
        compopt +o default 2>/dev/null # nothing, not even file names
    fi
    if [ $((directive & 2)) -ne 0 ]; then
        compopt -o nospace 2>/dev/null # a folder: go on typing in it
    fi
}
complete -o default -F _@PROG@_complete @PROG@
`

// zshCompletion is native zsh: it works from fpath (autoloaded as
// _@PROG@) and sourced.
const zshCompletion = `#compdef @PROG@
# zsh completion for @PROG@ (asks @PROG@ __complete)
_@PROG@() {
    local out directive
    local -a lines cands
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${lines[-1]#:}
    cands=("${(@)lines[1,-2]}")
    cands=(${cands:#})
    if (( ${#cands} )); then
        local -a descs plain
        local c
        for c in "${cands[@]}"; do # "candidate<TAB>description": commands
            if [[ $c == *$'\t'* ]]; then
                descs+=("${${c%%$'\t'*}//:/\\:}:${c#*$'\t'}")
            else
                plain+=("$c")
            fi
        done
        (( ${#descs} )) && _describe -t commands command descs
        if (( ${#plain} && (directive & 2) != 0 )); then
            compadd -Q -S '' -- "${plain[@]}" # a folder: go on typing in it
        elif (( ${#plain} )); then
            compadd -Q -- "${plain[@]}"
        fi
    elif (( (directive & 4) == 0 )); then
        _files
    else
        return 1
    fi
}
if [[ "${funcstack[1]}" == "_@PROG@" ]]; then
    _@PROG@ "$@"
else
    compdef _@PROG@ @PROG@
fi
`

// fishCompletion offers file names when the binary says so (directive
// without NoFile).
const fishCompletion = `# fish completion for @PROG@ (asks @PROG@ __complete)
function __@PROG@_complete
    set -l args (commandline -opc)[2..-1] (commandline -ct)
    set -l out (@PROG@ __complete $args 2>/dev/null)
    or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    set -e out[-1]
    printf '%s\n' $out # "candidate<TAB>description" is fish's own format
    if test (count $out) -eq 0; and test (math "bitand($directive, 4)") -eq 0
        __fish_complete_path (commandline -ct)
    end
end
complete -c @PROG@ -f -a '(__@PROG@_complete)'
`

const powershellCompletion = `# PowerShell completion for @PROG@ (asks @PROG@ __complete)
Register-ArgumentCompleter -Native -CommandName @PROG@ -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $words = @($commandAst.CommandElements | Select-Object -Skip 1 | ForEach-Object { $_.ToString() })
    if ($wordToComplete -eq '') { $words += '' }
    & @PROG@ __complete @words 2>$null | Where-Object { $_ -notmatch '^:\d+$' } | ForEach-Object {
        $c = ($_ -split "` + "`" + `t")[0]
        [System.Management.Automation.CompletionResult]::new($c, $c, 'ParameterValue', $c)
    }
}
`
