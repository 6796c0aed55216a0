// Package readme reads the names a README tells its users to type — flags, subcommands, exit
// codes, configuration keys and upper-case names such as environment variables — so that a test
// can check that a translation of the README still names every one of them.
//
// What counts, precisely:
//   - flags (--proc, -p): in inline code spans and fenced code blocks, never in plain prose;
//     a single dash takes exactly one letter (-ItemType is not a flag, docker-registry neither);
//   - subcommands: the word right after imagesync (or a path ending in /imagesync) and after
//     docker's plugin name in `docker [global flags] sync WORD`, in code spans and in code
//     blocks other than YAML/JSON, comments removed; `a|b|c` names three;
//   - exit codes: the integer first cells of the tables under a heading that mentions exit codes
//     (or whose first header cell says "code");
//   - keys: identifier-shaped mapping keys (username, max-conns) of YAML/JSON code blocks and of
//     shell here-documents written to a .yaml/.yml/.json file, the first column of tables whose
//     first header cell says key, field or setting, code spans written `key:` or `key: value`,
//     and code spans listed right before the word field(s), key(s) or setting(s);
//   - upper-case names (DEFAULT_REGISTRY, NAME_UNKNOWN): ALL_CAPS words with an underscore in code.
//
// A translation keeps code as it is, so Missing looks for each name as a whole token in the
// translation's code spans and code blocks, and for exit codes in the first cells of its tables.
package readme

import (
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kind says what a Name is.
type Kind string

// The kinds of names a README holds.
const (
	Flag       Kind = "flag"
	Subcommand Kind = "subcommand"
	ExitCode   Kind = "exit code"
	Key        Kind = "config key"
	UpperName  Kind = "environment variable or error code"
)

// Name is one name a README mentions, at the line of its first mention (1-based).
type Name struct {
	Kind Kind
	Text string
	Line int
}

// Names returns every name md mentions, each kind/text once, in order of first mention.
func Names(md string) []Name {
	d := parse(md)
	var out []Name
	seen := map[Name]bool{}
	add := func(k Kind, text string, line int) {
		key := Name{Kind: k, Text: text}
		if text == "" || seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Name{Kind: k, Text: text, Line: line})
	}
	for _, c := range d.code {
		for _, f := range flagsIn(c.text) {
			add(Flag, f.text, c.line+f.line)
		}
		for _, u := range upperNamesIn(c.text) {
			add(UpperName, u.text, c.line+u.line)
		}
		if !c.data() {
			for _, s := range subcommandsIn(c.text, c.block) {
				add(Subcommand, s.text, c.line+s.line)
			}
		}
		for _, k := range keysIn(c) {
			add(Key, k.text, c.line+k.line)
		}
	}
	for _, t := range d.tables {
		exitTable := strings.Contains(strings.ToLower(t.heading), "exit code") ||
			(t.header != nil && strings.Contains(strings.ToLower(t.header[0]), "code"))
		keyTable := false
		if t.header != nil {
			h := strings.ToLower(t.header[0])
			keyTable = strings.Contains(h, "key") || strings.Contains(h, "field") || strings.Contains(h, "setting")
		}
		for _, r := range t.rows {
			first := strings.TrimSpace(r.cells[0])
			if exitTable {
				if n := strings.Trim(first, "` "); integer.MatchString(n) {
					add(ExitCode, n, r.line)
				}
			}
			if keyTable {
				for _, s := range spansIn(first) {
					w := strings.TrimSuffix(firstWord(s.text), ":")
					if keyPath.MatchString(w) {
						add(Key, w, r.line)
					}
				}
			}
		}
	}
	for _, p := range d.prose {
		for _, m := range fieldList.FindAllStringSubmatchIndex(p.text, -1) {
			for _, s := range spansIn(p.text[m[2]:m[3]]) {
				if identifier.MatchString(s.text) {
					add(Key, s.text, p.line+strings.Count(p.text[:m[2]+s.at], "\n"))
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// Missing returns the names of original that translation lacks: a flag, subcommand, key or
// upper-case name that is not a whole token of the translation's code, an exit code that is not
// the first cell of one of its table rows.
func Missing(original, translation string) []Name {
	d := parse(translation)
	var code strings.Builder
	for _, c := range d.code {
		code.WriteString(c.text)
		code.WriteString("\n")
	}
	codes := map[string]bool{}
	for _, t := range d.tables {
		for _, r := range t.rows {
			codes[strings.Trim(strings.TrimSpace(r.cells[0]), "` ")] = true
		}
	}
	var missing []Name
	for _, n := range Names(original) {
		var ok bool
		if n.Kind == ExitCode {
			ok = codes[n.Text]
		} else {
			ok = containsToken(code.String(), n.Text)
		}
		if !ok {
			missing = append(missing, n)
		}
	}
	return missing
}

// containsToken reports whether tok occurs in s neither preceded nor followed by a letter,
// digit, '_' or '-' (so --proc is not found in --proc-max, nor ca in --ca-file).
func containsToken(s, tok string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(tok)
		if (start == 0 || !wordByte(s[start-1])) && (end == len(s) || !wordByte(s[end])) {
			return true
		}
		i = start + 1
	}
}

func wordByte(b byte) bool {
	return b == '_' || b == '-' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

var (
	integer    = regexp.MustCompile(`^[0-9]+$`)
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	keyPath    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$`)
	keySpan    = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*):(\s.*)?$`)
	subcommand = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	upperName  = regexp.MustCompile(`[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+`)
	// `a`, `b` and `c` fields — the spans right before field(s)/key(s)/setting(s).
	fieldList = regexp.MustCompile("((?:`[^`\n]+`(?:\\s*,\\s*|\\s+and\\s+|\\s+or\\s+|\\s*/\\s*)?)+)\\s+(?:fields?|keys?|settings?)\\b")
	// cat > file.yaml <<'EOF' (or <<EOF, <<"EOF", <<-EOF)
	hereDoc = regexp.MustCompile(`>\s*(\S+\.(?:ya?ml|json))\s+<<-?\s*['"]?([A-Za-z_]+)['"]?`)
)

// found is a name at a line offset inside a piece of code.
type found struct {
	text string
	line int
}

// flagsIn finds --long and -s flags in code: a dash at the start or after a space, bracket,
// quote, comma, '=', '|', '/' or backtick, then letters.
func flagsIn(s string) []found {
	var out []found
	for i := 0; i < len(s); i++ {
		if s[i] != '-' || (i > 0 && !strings.ContainsRune(" \t\n([{|,=/\"'`", rune(s[i-1]))) {
			continue
		}
		j := i + 1
		long := j < len(s) && s[j] == '-'
		if long {
			j++
		}
		k := j
		for k < len(s) && (wordByte(s[k]) && s[k] != '_') {
			k++
		}
		name := s[j:k]
		if name == "" || !isLetter(name[0]) || (!long && len(name) != 1) || strings.HasSuffix(name, "-") {
			continue
		}
		out = append(out, found{s[i:k], strings.Count(s[:i], "\n")})
		i = k
	}
	return out
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func upperNamesIn(s string) []found {
	var out []found
	for _, m := range upperName.FindAllStringIndex(s, -1) {
		if (m[0] > 0 && wordByte(s[m[0]-1]) && s[m[0]-1] != '-') || (m[1] < len(s) && wordByte(s[m[1]]) && s[m[1]] != '-') {
			continue
		}
		out = append(out, found{s[m[0]:m[1]], strings.Count(s[:m[0]], "\n")})
	}
	return out
}

// subcommandsIn finds the word after imagesync, or after `docker [flags] sync`, on each line of
// code. In a code block, what follows a # that starts a word is a comment and is ignored.
func subcommandsIn(s string, block bool) []found {
	var out []found
	for ln, line := range strings.Split(s, "\n") {
		if block {
			line = stripComment(line)
		}
		toks := strings.Fields(line)
		for i := 0; i+1 < len(toks); i++ {
			t := strings.TrimLeft(toks[i], "<($`")
			next := -1
			switch {
			case t == "imagesync" || strings.HasSuffix(t, "/imagesync") || t == "imagesync.exe":
				next = i + 1
			case t == "docker":
				for j := i + 1; j < len(toks) && j <= i+4; j++ {
					if toks[j] == "sync" {
						next = j + 1
						break
					}
					if !strings.HasPrefix(toks[j], "-") && strings.ToUpper(toks[j]) != toks[j] && !strings.ContainsAny(toks[j], "/~.") {
						break // another docker command
					}
				}
			}
			if next < 0 || next >= len(toks) {
				continue
			}
			for _, w := range strings.Split(strings.Trim(toks[next], "`)"), "|") {
				if subcommand.MatchString(w) {
					out = append(out, found{w, ln})
				}
			}
		}
	}
	return out
}

func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// keysIn finds configuration keys in a piece of code: mapping keys of a YAML/JSON block or of a
// here-document written to such a file, or the key of a `key:` / `key: value` code span.
func keysIn(c code) []found {
	if !c.block {
		if m := keySpan.FindStringSubmatch(strings.TrimSpace(c.text)); m != nil {
			return []found{{m[1], 0}}
		}
		return nil
	}
	if c.data() {
		return dataKeys(c.text, 0)
	}
	var out []found
	lines := strings.Split(c.text, "\n")
	for i := 0; i < len(lines); i++ {
		m := hereDoc.FindStringSubmatch(stripComment(lines[i]))
		if m == nil {
			continue
		}
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != m[2] {
			end++
		}
		out = append(out, dataKeys(strings.Join(lines[i+1:end], "\n"), i+1)...)
		i = end
	}
	return out
}

// dataKeys returns the identifier-shaped mapping keys of a YAML or JSON document (JSON is read
// as YAML). A snippet that does not parse — an example with placeholders — is read line by line.
func dataKeys(doc string, lineOffset int) []found {
	var out []found
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err == nil {
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if k := n.Content[i]; identifier.MatchString(k.Value) {
						out = append(out, found{k.Value, lineOffset + k.Line - 1})
					}
				}
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&root)
		return out
	}
	for i, line := range strings.Split(doc, "\n") {
		for _, m := range looseKey.FindAllStringSubmatch(line, -1) {
			k := m[1] + m[2]
			if identifier.MatchString(k) {
				out = append(out, found{k, lineOffset + i})
			}
		}
	}
	return out
}

// looseKey: a quoted key followed by ':' (JSON), or a YAML key at the start of a line, after
// "- " or inside a flow mapping.
var looseKey = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_-]*)"\s*:|(?:^\s*(?:-\s+)?|[{,]\s*)([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s|$)`)

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// span is an inline code span: its content and the byte offset of its opening backticks.
type span struct {
	text string
	at   int
}

// spansIn returns the inline code spans of s (a run of n backticks up to the next run of
// exactly n), with line breaks read as spaces and one surrounding space removed.
func spansIn(s string) []span {
	var out []span
	for i := 0; i < len(s); {
		if s[i] != '`' {
			i++
			continue
		}
		n := run(s, i)
		closeAt := -1
		for j := i + n; j < len(s); {
			if s[j] != '`' {
				j++
				continue
			}
			m := run(s, j)
			if m == n {
				closeAt = j
				break
			}
			j += m
		}
		if closeAt < 0 {
			i += n
			continue
		}
		c := strings.ReplaceAll(s[i+n:closeAt], "\n", " ")
		if len(c) > 2 && c[0] == ' ' && c[len(c)-1] == ' ' && strings.Trim(c, " ") != "" {
			c = c[1 : len(c)-1]
		}
		out = append(out, span{c, i})
		i = closeAt + n
	}
	return out
}

func run(s string, i int) int {
	n := 0
	for i+n < len(s) && s[i+n] == '`' {
		n++
	}
	return n
}
