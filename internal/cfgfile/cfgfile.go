// Package cfgfile decodes JSON and YAML configuration files into a small,
// position-aware tree. Every node and map key carries its 1-based line so
// callers can report errors as "FILE:LINE: key "KEY": message". Duplicate map
// keys are always an error naming both lines.
package cfgfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind is the type of a Node.
type Kind int

const (
	Null Kind = iota
	String
	Bool
	Number
	List
	Map
)

var kindNames = [...]string{"null", "string", "bool", "number", "list", "map"}

// String returns "null", "string", "bool", "number", "list" or "map".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Node is one value of a decoded file.
type Node struct {
	Kind Kind
	Str  string // String; also the literal text of Number and Bool
	Bool bool
	List []*Node
	Map  []KeyValue // in file order
	Line int        // 1-based, 0 if unknown
}

// KeyValue is one entry of a Map node.
type KeyValue struct {
	Key   string
	Line  int // line of the key
	Value *Node
	// Dup is the line of the first definition of Key in the same map when
	// this entry repeats it; only LoadKeepDuplicates keeps such entries.
	Dup int
}

// Get returns the value of key in a Map node. It returns false when n is nil,
// not a map, or has no such key.
func (n *Node) Get(key string) (*Node, bool) {
	if n == nil || n.Kind != Map {
		return nil, false
	}
	for i := range n.Map {
		if n.Map[i].Key == key {
			return n.Map[i].Value, true
		}
	}
	return nil, false
}

// Error is an error located in a file. Error() renders it as
// `FILE:LINE: key "KEY": MSG`, leaving out ":LINE" when Line is 0 and the key
// part when Key is empty.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
	Err  error // optional underlying error (for errors.Is / errors.As)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString("key ")
		b.WriteString(strconv.Quote(e.Key))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Load reads and decodes the file at path. A file that cannot be read gives
// an *Error naming the path that wraps the os error (errors.Is(err,
// fs.ErrNotExist) works).
func Load(path string) (*Node, error) {
	if _, err := format(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				msg = "file not found"
			}
		}
		return nil, &Error{File: path, Msg: msg, Err: err}
	}
	return Decode(path, data)
}

// Decode decodes data, choosing the format from path's extension (.json,
// .yaml or .yml, case-insensitive). An empty document gives a Null node.
func Decode(path string, data []byte) (*Node, error) {
	return decode(path, data, false)
}

// LoadKeepDuplicates is Load, except that a duplicate map key is no error:
// every entry is kept, in file order, and a repeated one has Dup set to the
// line of the first. The caller decides (see Duplicates).
func LoadKeepDuplicates(path string) (*Node, error) {
	if _, err := format(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Load(path) // the same error, worded the same way
	}
	return decode(path, data, true)
}

func decode(path string, data []byte, keepDups bool) (*Node, error) {
	f, err := format(path)
	if err != nil {
		return nil, err
	}
	if f == "json" {
		return decodeJSON(path, data, keepDups)
	}
	return decodeYAML(path, data, keepDups)
}

// Duplicates returns the error Load would give for every repeated key in
// the tree under n (see LoadKeepDuplicates), in file order.
func Duplicates(file string, n *Node) []error {
	var out []error
	var walk func(n *Node)
	walk = func(n *Node) {
		if n == nil {
			return
		}
		for _, kv := range n.Map {
			if kv.Dup > 0 {
				out = append(out, DuplicateError(file, kv))
			}
			walk(kv.Value)
		}
		for _, it := range n.List {
			walk(it)
		}
	}
	walk(n)
	return out
}

// DuplicateError is the error of a repeated key.
func DuplicateError(file string, kv KeyValue) *Error {
	return &Error{File: file, Line: kv.Line, Key: kv.Key, Msg: fmt.Sprintf("duplicate key (first defined at line %d)", kv.Dup)}
}

func format(path string) (string, error) {
	ext := filepath.Ext(path)
	switch strings.ToLower(ext) {
	case ".json":
		return "json", nil
	case ".yaml", ".yml":
		return "yaml", nil
	}
	msg := fmt.Sprintf("unsupported file extension %q (use .json, .yaml or .yml)", ext)
	return "", &Error{File: path, Msg: msg}
}

// dupChecker reports duplicate keys of one map; with keep it returns the
// line of the first definition instead of an error.
type dupChecker struct {
	file string
	keep bool
	seen map[string]int
}

func (d *dupChecker) add(key string, line int) (dupOf int, err error) {
	if d.seen == nil {
		d.seen = make(map[string]int)
	}
	if first, ok := d.seen[key]; ok {
		if d.keep {
			return max(first, 1), nil
		}
		msg := "duplicate key"
		if first > 0 {
			msg = fmt.Sprintf("duplicate key (first defined at line %d)", first)
		}
		return 0, &Error{File: d.file, Line: line, Key: key, Msg: msg}
	}
	d.seen[key] = line
	return 0, nil
}
