package cfgfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

type jsonParser struct {
	file     string
	keepDups bool
	data     []byte
	dec      *json.Decoder
	newlines []int // offsets of '\n' in data
	depth    int   // arrays and objects open
}

// maxJSONDepth caps how deep arrays and objects nest, as YAML's decoder
// does (10,000): a deeper file is refused with its line, instead of
// exhausting the stack or memory.
const maxJSONDepth = 10_000

func decodeJSON(file string, data []byte, keepDups bool) (*Node, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &jsonParser{file: file, data: data, keepDups: keepDups}
	for i, c := range data {
		if c == '\n' {
			p.newlines = append(p.newlines, i)
		}
	}
	p.dec = json.NewDecoder(bytes.NewReader(data))
	p.dec.UseNumber()

	tok, err := p.dec.Token()
	if err == io.EOF {
		return &Node{Kind: Null}, nil
	}
	if err != nil {
		return nil, p.syntaxError(err)
	}
	n, err := p.value(tok)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, p.syntaxError(err)
		}
		return nil, &Error{File: file, Line: p.tokenLine(), Msg: "invalid JSON: unexpected data after the top-level value"}
	}
	return n, nil
}

// lineAt returns the 1-based line of byte offset off.
func (p *jsonParser) lineAt(off int64) int {
	return 1 + sort.Search(len(p.newlines), func(i int) bool { return int64(p.newlines[i]) >= off })
}

// tokenLine returns the line of the token returned last (its last byte).
func (p *jsonParser) tokenLine() int {
	off := p.dec.InputOffset()
	if off > 0 {
		off--
	}
	return p.lineAt(off)
}

func (p *jsonParser) syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// Scanner errors count the offending byte in Offset; errors from
		// Token's state machine point at it (after skipped whitespace).
		off := se.Offset
		if off > 0 && (off >= int64(len(p.data)) || !isSpace(p.data[off-1])) {
			off--
		}
		return &Error{File: p.file, Line: p.lineAt(off), Msg: "invalid JSON: " + se.Error(), Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF:
		return &Error{File: p.file, Line: p.lineAt(int64(len(p.data))), Msg: "invalid JSON: unexpected end of input", Err: err}
	}
	return &Error{File: p.file, Line: p.tokenLine(), Msg: "invalid JSON: " + err.Error(), Err: err}
}

func (p *jsonParser) next() (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxError(err)
	}
	return tok, nil
}

// value builds the node starting with tok, which has just been read.
func (p *jsonParser) value(tok json.Token) (*Node, error) {
	line := p.tokenLine()
	switch t := tok.(type) {
	case nil:
		return &Node{Kind: Null, Line: line}, nil
	case string:
		return &Node{Kind: String, Str: t, Line: line}, nil
	case bool:
		s := "false"
		if t {
			s = "true"
		}
		return &Node{Kind: Bool, Bool: t, Str: s, Line: line}, nil
	case json.Number:
		return &Node{Kind: Number, Str: t.String(), Line: line}, nil
	case json.Delim:
		if p.depth++; p.depth > maxJSONDepth {
			return nil, &Error{File: p.file, Line: line, Msg: fmt.Sprintf("invalid JSON: arrays and objects nested more than %d levels deep", maxJSONDepth)}
		}
		defer func() { p.depth-- }()
		switch t {
		case '[':
			n := &Node{Kind: List, Line: line, List: []*Node{}}
			for {
				tok, err := p.next()
				if err != nil {
					return nil, err
				}
				if tok == json.Delim(']') {
					return n, nil
				}
				v, err := p.value(tok)
				if err != nil {
					return nil, err
				}
				n.List = append(n.List, v)
			}
		case '{':
			n := &Node{Kind: Map, Line: line, Map: []KeyValue{}}
			dups := dupChecker{file: p.file, keep: p.keepDups}
			for {
				tok, err := p.next()
				if err != nil {
					return nil, err
				}
				if tok == json.Delim('}') {
					return n, nil
				}
				key, ok := tok.(string)
				if !ok { // the decoder guarantees string keys; be defensive
					return nil, &Error{File: p.file, Line: p.tokenLine(), Msg: "invalid JSON: object key is not a string"}
				}
				keyLine := p.tokenLine()
				dupOf, err := dups.add(key, keyLine)
				if err != nil {
					return nil, err
				}
				tok, err = p.next()
				if err != nil {
					return nil, err
				}
				v, err := p.value(tok)
				if err != nil {
					return nil, err
				}
				n.Map = append(n.Map, KeyValue{Key: key, Line: keyLine, Value: v, Dup: dupOf})
			}
		}
	}
	return nil, &Error{File: p.file, Line: line, Msg: fmt.Sprintf("invalid JSON: unexpected token %v", tok)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
