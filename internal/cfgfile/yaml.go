package cfgfile

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxAliasNodes bounds the number of nodes built while expanding aliases,
// so that "billion laughs" documents fail instead of exhausting memory.
const maxAliasNodes = 1 << 20

type yamlConverter struct {
	file       string
	keepDups   bool
	active     map[*yaml.Node]bool // aliases being expanded (cycle guard)
	aliasDepth int
	aliasNodes int
}

func decodeYAML(file string, data []byte, keepDups bool) (*Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return &Node{Kind: Null}, nil
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return nil, yamlError(file, err)
		}
		return nil, &Error{File: file, Line: extra.Line, Msg: "invalid YAML: multiple documents in one file are not supported"}
	}
	c := &yamlConverter{file: file, keepDups: keepDups, active: map[*yaml.Node]bool{}}
	return c.convert(&doc)
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// Not expected when decoding into yaml.Node; report the first one.
		return yamlMessage(file, te.Errors[0], err)
	}
	return yamlMessage(file, strings.TrimPrefix(err.Error(), "yaml: "), err)
}

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 reports their line 0-based (and leaves it out on the
// first line), so they are corrected by one. For errors inside a collection
// the line is where that collection starts.
var yamlParserErrors = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

func yamlMessage(file, msg string, err error) error {
	msg = strings.TrimSpace(msg)
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if yamlParserErrors[msg] {
		line++
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

func (c *yamlConverter) newNode(n Node) (*Node, error) {
	if c.aliasDepth > 0 {
		c.aliasNodes++
		if c.aliasNodes > maxAliasNodes {
			return nil, &Error{File: c.file, Line: n.Line, Msg: "invalid YAML: document contains excessive aliasing"}
		}
	}
	return &n, nil
}

func (c *yamlConverter) convert(y *yaml.Node) (*Node, error) {
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &Node{Kind: Null, Line: y.Line}, nil
		}
		return c.convert(y.Content[0])
	case yaml.AliasNode:
		return c.alias(y)
	case yaml.ScalarNode:
		return c.scalar(y)
	case yaml.SequenceNode:
		n, err := c.newNode(Node{Kind: List, Line: y.Line, List: make([]*Node, 0, len(y.Content))})
		if err != nil {
			return nil, err
		}
		for _, item := range y.Content {
			v, err := c.convert(item)
			if err != nil {
				return nil, err
			}
			n.List = append(n.List, v)
		}
		return n, nil
	case yaml.MappingNode:
		return c.mapping(y)
	}
	return nil, &Error{File: c.file, Line: y.Line, Msg: "invalid YAML: unexpected node kind"}
}

func (c *yamlConverter) alias(y *yaml.Node) (*Node, error) {
	target := y.Alias
	if target == nil {
		return nil, &Error{File: c.file, Line: y.Line, Msg: "invalid YAML: unknown anchor " + strconv.Quote(y.Value)}
	}
	if c.active[target] {
		return nil, &Error{File: c.file, Line: y.Line, Msg: "invalid YAML: anchor " + strconv.Quote(y.Value) + " contains itself"}
	}
	c.active[target] = true
	c.aliasDepth++
	n, err := c.convert(target)
	c.aliasDepth--
	delete(c.active, target)
	if err != nil {
		return nil, err
	}
	// Report the value where the alias is used, not where the anchor is.
	cp := *n
	cp.Line = y.Line
	return &cp, nil
}

func (c *yamlConverter) scalar(y *yaml.Node) (*Node, error) {
	n := Node{Kind: String, Str: y.Value, Line: y.Line}
	switch y.ShortTag() {
	case "!!null":
		n = Node{Kind: Null, Line: y.Line}
	case "!!bool":
		n.Kind = Bool
		switch strings.ToLower(y.Value) {
		case "true", "yes", "y", "on":
			n.Bool = true
		}
	case "!!int", "!!float":
		n.Kind = Number
	}
	return c.newNode(n)
}

// key returns the string form of a mapping key.
func (c *yamlConverter) key(k *yaml.Node) (string, error) {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", &Error{File: c.file, Line: k.Line, Msg: "invalid YAML: a map key must be a string, not a " + yamlKindName(k.Kind)}
	}
	if k.ShortTag() == "!!null" {
		return "", nil
	}
	return k.Value, nil
}

func yamlKindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "map"
	}
	return "complex value"
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

type entry struct {
	kv     KeyValue
	merged bool
}

func (c *yamlConverter) mapping(y *yaml.Node) (*Node, error) {
	n, err := c.newNode(Node{Kind: Map, Line: y.Line})
	if err != nil {
		return nil, err
	}
	var entries []entry
	explicit := map[string]bool{}
	dups := dupChecker{file: c.file, keep: c.keepDups}
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, v := y.Content[i], y.Content[i+1]
		if isMergeKey(k) {
			merged, err := c.mergeSources(v)
			if err != nil {
				return nil, err
			}
			for _, m := range merged {
				entries = append(entries, entry{kv: m, merged: true})
			}
			continue
		}
		key, err := c.key(k)
		if err != nil {
			return nil, err
		}
		dupOf, err := dups.add(key, k.Line)
		if err != nil {
			return nil, err
		}
		explicit[key] = true
		val, err := c.convert(v)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{kv: KeyValue{Key: key, Line: k.Line, Value: val, Dup: dupOf}})
	}
	// Explicit keys override merged ones; among merged maps the first wins.
	taken := map[string]bool{}
	n.Map = make([]KeyValue, 0, len(entries))
	for _, e := range entries {
		if e.merged && (explicit[e.kv.Key] || taken[e.kv.Key]) {
			continue
		}
		taken[e.kv.Key] = true
		n.Map = append(n.Map, e.kv)
	}
	return n, nil
}

// mergeSources returns the entries a "<<" key merges in, in priority order.
func (c *yamlConverter) mergeSources(v *yaml.Node) ([]KeyValue, error) {
	var out []KeyValue
	add := func(s *yaml.Node) error {
		m, err := c.convert(s)
		if err != nil {
			return err
		}
		if m.Kind != Map {
			return &Error{File: c.file, Line: s.Line, Msg: "invalid YAML: a merge key (<<) needs a map or a list of maps"}
		}
		out = append(out, m.Map...)
		return nil
	}
	target := v
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		target = v.Alias
		if c.active[target] {
			return nil, &Error{File: c.file, Line: v.Line, Msg: "invalid YAML: anchor " + strconv.Quote(v.Value) + " contains itself"}
		}
		if target.Kind == yaml.SequenceNode {
			c.active[target] = true
			c.aliasDepth++
			defer func() {
				c.aliasDepth--
				delete(c.active, target)
			}()
		}
	}
	if target.Kind == yaml.SequenceNode {
		for _, item := range target.Content {
			if err := add(item); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return out, add(v)
}
