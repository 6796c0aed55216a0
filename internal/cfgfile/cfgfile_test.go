package cfgfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// render prints a tree compactly: kind@line, keys as "key@line=".
func render(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	switch n.Kind {
	case Map:
		parts := make([]string, len(n.Map))
		for i, kv := range n.Map {
			parts[i] = fmt.Sprintf("%s@%d=%s", kv.Key, kv.Line, render(kv.Value))
		}
		return fmt.Sprintf("{@%d %s}", n.Line, strings.Join(parts, " "))
	case List:
		parts := make([]string, len(n.List))
		for i, v := range n.List {
			parts[i] = render(v)
		}
		return fmt.Sprintf("[@%d %s]", n.Line, strings.Join(parts, " "))
	case Bool:
		return fmt.Sprintf("bool(%s=%v)@%d", n.Str, n.Bool, n.Line)
	case Null:
		return fmt.Sprintf("null@%d", n.Line)
	}
	return fmt.Sprintf("%s(%s)@%d", n.Kind, n.Str, n.Line)
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		file string
		data string
		want string // render() of the tree
		err  string // exact Error() text when non-empty
	}{
		{
			name: "json nesting and lines",
			file: "a.json",
			data: "{\n  \"a\": 1,\n  \"b\":\n    [\n      \"x\", true, null, 1.5e3\n    ],\n  \"c\": {\"d\": false}\n}\n",
			want: "{@1 a@2=number(1)@2 b@3=[@4 string(x)@5 bool(true=true)@5 null@5 number(1.5e3)@5] c@7={@7 d@7=bool(false=false)@7}}",
		},
		{
			name: "json top-level list",
			file: "A.JSON",
			data: "[\n\"x\",\n[]\n]",
			want: "[@1 string(x)@2 [@3 ]]",
		},
		{name: "json empty file", file: "a.json", data: " \n\n", want: "null@0"},
		{name: "json byte order mark", file: "a.json", data: "\xef\xbb\xbf{\"a\": \"b\"}", want: "{@1 a@1=string(b)@1}"},
		{
			name: "json duplicate key",
			file: "images.json",
			data: "{\n  \"quay.io/a/b\": \"x\",\n  \"c\": \"y\",\n  \"quay.io/a/b\": \"z\"\n}",
			err:  `images.json:4: key "quay.io/a/b": duplicate key (first defined at line 2)`,
		},
		{
			name: "json nested duplicate key",
			file: "auth.json",
			data: "{\"r\": {\n\"username\": \"a\",\n\"username\": \"b\"}}",
			err:  `auth.json:3: key "username": duplicate key (first defined at line 2)`,
		},
		{
			name: "json syntax error line",
			file: "a.json",
			data: "{\n  \"a\": 1,\n  \"b\" 2\n}",
			err:  `a.json:3: invalid JSON: invalid character '2' after object key`,
		},
		{
			name: "json trailing comma",
			file: "a.json",
			data: "{\n  \"a\": 1,\n}",
			err:  `a.json:3: invalid JSON: invalid character '}' looking for beginning of object key string`,
		},
		{
			name: "json missing comma",
			file: "a.json",
			data: "{\n  \"a\": 1\n  \"b\": 2\n}",
			err:  `a.json:3: invalid JSON: invalid character '"' after object key:value pair`,
		},
		{
			name: "json bad literal",
			file: "a.json",
			data: "{\n\n  \"a\": tru\n}",
			err:  `a.json:3: invalid JSON: invalid character '\n' in literal true (expecting 'e')`,
		},
		{name: "json truncated", file: "a.json", data: "{\n \"a\": [1,\n", err: `a.json:3: invalid JSON: unexpected end of input`},
		{name: "json trailing data", file: "a.json", data: "{}\n{}", err: `a.json:2: invalid JSON: unexpected data after the top-level value`},
		{
			name: "yaml nesting, lines and scalar kinds",
			file: "a.yaml",
			data: "a: 1\nb:\n  - x\n  - yes\n  - ~\n  - true\n  - '1'\nc:\n  d: 2.5\n",
			want: "{@1 a@1=number(1)@1 b@2=[@3 string(x)@3 string(yes)@4 null@5 bool(true=true)@6 string(1)@7] c@8={@9 d@9=number(2.5)@9}}",
		},
		{
			name: "yaml aliases and merge keys",
			file: "a.yml",
			data: "base: &b {k: v, z: 0}\nuse: *b\nmerged:\n  <<: *b\n  z: 1\n",
			want: "{@1 base@1={@1 k@1=string(v)@1 z@1=number(0)@1} use@2={@2 k@1=string(v)@1 z@1=number(0)@1} merged@3={@4 k@1=string(v)@1 z@5=number(1)@5}}",
		},
		{name: "yaml empty file", file: "a.yaml", data: "", want: "null@0"},
		{name: "yaml only comments", file: "a.yaml", data: "# nothing\n", want: "null@0"},
		{name: "yaml null and empty string keys", file: "a.yaml", data: "~: a\n", want: "{@1 @1=string(a)@1}"},
		{
			name: "yaml duplicate key",
			file: "images.yaml",
			data: "# rules\n\n\nquay.io/a/b: x\nother: y\n\n\nquay.io/a/b: z\n",
			err:  `images.yaml:8: key "quay.io/a/b": duplicate key (first defined at line 4)`,
		},
		{
			name: "yaml nested duplicate key",
			file: "a.yaml",
			data: "r:\n  username: a\n  username: b\n",
			err:  `a.yaml:3: key "username": duplicate key (first defined at line 2)`,
		},
		{
			name: "yaml syntax error line",
			file: "a.yaml",
			data: "a: 1\n b: 2\n",
			err:  `a.yaml:2: invalid YAML: mapping values are not allowed in this context`,
		},
		{
			name: "yaml unclosed flow list",
			file: "a.yaml",
			data: "a: 1\nb: [x,\n",
			err:  `a.yaml:3: invalid YAML: did not find expected node content`,
		},
		{
			name: "yaml unclosed flow list reports where it starts",
			file: "a.yaml",
			data: "a: 1\nb: [x\nc: d\n",
			err:  `a.yaml:2: invalid YAML: did not find expected ',' or ']'`,
		},
		{
			name: "yaml bad block mapping reports where it starts",
			file: "a.yaml",
			data: "a:\n  b: 1\n  - c\n",
			err:  `a.yaml:2: invalid YAML: did not find expected key`,
		},
		{name: "yaml multiple documents", file: "a.yaml", data: "a: 1\n---\nb: 2\n", err: `a.yaml:2: invalid YAML: multiple documents in one file are not supported`},
		{name: "yaml recursive alias", file: "a.yaml", data: "a: &s [ {<<: *s} ]\n", err: `a.yaml:1: invalid YAML: anchor "s" contains itself`},
		{name: "yaml complex key", file: "a.yaml", data: "? [a, b]\n: c\n", err: `a.yaml:1: invalid YAML: a map key must be a string, not a list`},
		{name: "unknown extension", file: "images.txt", data: "a: b", err: `images.txt: unsupported file extension ".txt" (use .json, .yaml or .yml)`},
		{name: "no extension", file: "images", data: "a: b", err: `images: unsupported file extension "" (use .json, .yaml or .yml)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Decode(tt.file, []byte(tt.data))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error; got %s", render(n))
				}
				var ce *Error
				if !errors.As(err, &ce) {
					t.Errorf("error %T is not a *cfgfile.Error", err)
				}
				if err.Error() != tt.err {
					t.Errorf("error:\n got %s\nwant %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := render(n); got != tt.want {
				t.Errorf("tree:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Key: "k", Msg: "m"}, `f.yaml:3: key "k": m`},
		{Error{File: "f.yaml", Key: "k", Msg: "m"}, `f.yaml: key "k": m`},
		{Error{File: "f.yaml", Line: 3, Msg: "m"}, `f.yaml:3: m`},
		{Error{File: "f.yaml", Msg: "m"}, `f.yaml: m`},
		{Error{Line: 2, Msg: "m"}, `line 2: m`},
		{Error{Msg: "m"}, `m`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestGet(t *testing.T) {
	n, err := Decode("a.yaml", []byte("auth: {a: 1}\nimages: {b: c}\n"))
	if err != nil {
		t.Fatal(err)
	}
	img, ok := n.Get("images")
	if !ok || img.Kind != Map {
		t.Fatalf("Get(images) = %v, %v", img, ok)
	}
	if v, ok := img.Get("b"); !ok || v.Str != "c" {
		t.Errorf("Get(b) = %v, %v", v, ok)
	}
	if _, ok := n.Get("missing"); ok {
		t.Error("Get(missing) found something")
	}
	var nilNode *Node
	if _, ok := nilNode.Get("x"); ok {
		t.Error("nil Get found something")
	}
	if _, ok := img.Map[0].Value.Get("x"); ok {
		t.Error("Get on a string found something")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "images.yaml")
	if err := os.WriteFile(good, []byte("a: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(n), "{@1 a@1=string(b)@1}"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}

	missing := filepath.Join(dir, "nope.json")
	_, err = Load(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}

	_, err = Load(filepath.Join(dir, "nope.txt"))
	if err == nil || !strings.Contains(err.Error(), `unsupported file extension ".txt"`) {
		t.Errorf("bad extension: got %v", err)
	}
}

func TestExcessiveAliasing(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	_, err := Decode("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("got %v", err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Null: "null", String: "string", Bool: "bool", Number: "number", List: "list", Map: "map", Kind(9): "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: got %q, want %q", int(k), got, want)
		}
	}
}

// JSON nested deeper than 10,000 levels (the YAML decoder's cap) is refused
// with the file and the line, at any depth: 5 million levels used to
// overflow the stack (a fatal error), 1 million to take 870 MB.
func TestDeepJSON(t *testing.T) {
	for _, tc := range []struct {
		name  string
		depth int
		open  string
	}{
		{"arrays at the cap", 10_000, "["},
		{"arrays past the cap", 10_001, "["},
		{"objects past the cap", 10_001, `{"k":`},
		{"5 million arrays", 5_000_000, "["},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("{\n\"images\":\n")
			b.WriteString(strings.Repeat(tc.open, tc.depth-1))
			b.WriteString("1")
			closer := "]"
			if tc.open != "[" {
				closer = "}"
			}
			b.WriteString(strings.Repeat(closer, tc.depth-1))
			b.WriteString("}\n")
			_, err := Decode("deep.json", []byte(b.String()))
			if tc.depth <= 10_000 {
				if err != nil {
					t.Fatalf("at the cap: %v", err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "deep.json" || ce.Line != 3 || !strings.Contains(err.Error(), "nested more than 10000 levels deep") {
				t.Fatalf("got %v; want an error at deep.json:3 naming the cap", err)
			}
		})
	}
}
