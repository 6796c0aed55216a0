package readme

import (
	"regexp"
	"strings"
)

// The little of Markdown (CommonMark + GitHub tables) the extraction needs: fenced code blocks,
// inline code spans, tables with the heading above them, and prose paragraphs. Indented code
// blocks are read as prose (this project's docs fence their code).

// code is a fenced code block (block) or an inline code span, and the line it starts on.
type code struct {
	text  string
	line  int
	block bool
	lang  string
}

// data reports whether the code is a YAML or JSON document.
func (c code) data() bool {
	switch strings.ToLower(c.lang) {
	case "yaml", "yml", "json", "jsonc", "json5":
		return c.block
	}
	return false
}

type row struct {
	cells []string
	line  int
}

// table is a run of lines starting with '|'. header is nil when the second line is not a
// delimiter row (then every line is a body row).
type table struct {
	heading string
	header  []string
	rows    []row
}

type paragraph struct {
	text string
	line int
}

type heading struct {
	level int
	text  string
	line  int
}

type document struct {
	code     []code
	tables   []table
	prose    []paragraph
	headings []heading
}

var (
	fenceOpen    = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})\\s*([^\\s`]*)")
	atxHeading   = regexp.MustCompile(`^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$`)
	delimiterRow = regexp.MustCompile(`^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$`)
)

func parse(md string) document {
	var d document
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	current := "" // text of the last heading
	var para []string
	paraLine := 0
	endParagraph := func() {
		if len(para) > 0 {
			text := strings.Join(para, "\n")
			d.prose = append(d.prose, paragraph{text, paraLine})
			d.addSpans(text, paraLine)
		}
		para = nil
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			endParagraph()
			fence := m[1]
			j := i + 1
			for j < len(lines) && !closesFence(lines[j], fence) {
				j++
			}
			d.code = append(d.code, code{
				text:  strings.Join(lines[i+1:j], "\n"),
				line:  i + 2,
				block: true,
				lang:  m[2],
			})
			i = j
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			endParagraph()
			current = m[2]
			d.headings = append(d.headings, heading{len(m[1]), m[2], i + 1})
			d.addSpans(m[2], i+1)
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "|") {
			endParagraph()
			t := table{heading: current}
			start := i
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				if i == start+1 && delimiterRow.MatchString(strings.TrimSpace(lines[i])) {
					t.header = t.rows[0].cells
					t.rows = nil
					continue
				}
				cells := splitRow(lines[i])
				for _, c := range cells {
					d.addSpans(c, i+1)
				}
				t.rows = append(t.rows, row{cells, i + 1})
			}
			i--
			d.tables = append(d.tables, t)
			continue
		}
		if strings.TrimSpace(line) == "" {
			endParagraph()
			continue
		}
		if len(para) == 0 {
			paraLine = i + 1
		}
		para = append(para, line)
	}
	endParagraph()
	return d
}

func closesFence(line, fence string) bool {
	t := strings.TrimRight(strings.TrimLeft(line, " "), " \t")
	if len(line)-len(strings.TrimLeft(line, " ")) > 3 || len(t) < len(fence) {
		return false
	}
	return strings.Trim(t, fence[:1]) == ""
}

// addSpans records the code spans of text, which starts on line.
func (d *document) addSpans(text string, line int) {
	for _, s := range spansIn(text) {
		d.code = append(d.code, code{text: s.text, line: line + strings.Count(text[:s.at], "\n")})
	}
}

// splitRow splits a table line into cells on the '|' not escaped by a backslash; `\|` in a
// cell is read as '|', as GitHub renders it (also inside code spans).
func splitRow(line string) []string {
	s := strings.TrimSpace(line)
	s = strings.TrimPrefix(s, "|")
	if strings.HasSuffix(s, "|") && !strings.HasSuffix(s, `\|`) {
		s = s[:len(s)-1]
	}
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '|':
			cell.WriteByte('|')
			i++
		case s[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(s[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}
