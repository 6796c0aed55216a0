package cfgfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzMaxInput caps the input size: larger inputs are skipped.
const fuzzMaxInput = 64 << 10

// fuzzTimeout is how long one Decode may take before it counts as a hang.
const fuzzTimeout = 10 * time.Second

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		// image-syncer images.yaml / auth.yaml
		"quay.io/coreos/etcd:/^v3\\.5\\./: harbor.example.com/mirror/etcd\n" +
			"nginx:1.27:\n  - 127.0.0.1:5000/mirror/nginx\n  - r.io/team/nginx:stable\n",
		"quay.io:\n  username: ${QUAY_USER}\n  password: ${QUAY_PASSWORD}\n" +
			"harbor.example.com/project:\n  username: robot$$project   # $$ is a literal $\n" +
			"registry.local:5000:\n  insecure: true\n",
		// legacy config: auth + images
		"auth:\n  r.io:\n    username: u\n    password: 'p: w'\nimages:\n  quay.io/a/b@sha256:" + strings.Repeat("a", 64) + ": r.io/ns/b\n",
		// duplicate keys, anchors, merge keys, alias cycles
		"nginx: a\nredis: b\nnginx: c\n",
		"base: &b {x: 1, y: 2}\nm:\n  <<: [*b, {z: 3}]\n  x: 9\n",
		"a: &a [*a]\n",
		"a: &a\n  <<: *a\n",
		"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
		"? [complex]\n: key\n",
		"---\na: 1\n---\nb: 2\n",
		"!!binary aGVsbG8=\n",
		"t: yes\nn: ~\nf: 1.5e3\ni: 0x1F\ns: \"quoted\"\n",
		// JSON
		"{\n  \"quay.io/a/b:1,2\": \"r.io/ns/b:x,y\",\n  \"nginx\": [\"r.io/a\", null, true, 1.5e3]\n}\n",
		"{\"a\": 1, \"a\": 2}",
		"\xef\xbb\xbf{\"k\": \"v\"}",
		"{\"a\": [1, 2,]}",
		"[] []",
		"",
		"   \n\t",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		for _, name := range []string{"f.yaml", "f.json"} {
			n, err := decodeWithTimeout(t, name, data)
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) || ce.File != name || ce.Line < 0 {
					t.Fatalf("%s: error %T %v is not a located *Error for the file", name, err, err)
				}
				if name == "f.json" {
					trimmed := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
					if json.Valid(trimmed) && !strings.Contains(err.Error(), "duplicate key") {
						t.Fatalf("valid JSON rejected: %v", err)
					}
				}
				continue
			}
			if n == nil {
				t.Fatalf("%s: nil node without error", name)
			}
			checkNode(t, name, n, 0)
			if name == "f.json" {
				trimmed := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
				if len(bytes.TrimSpace(trimmed)) > 0 && !json.Valid(trimmed) {
					t.Fatalf("invalid JSON accepted as %s", n.Kind)
				}
			}
		}
	})
}

func decodeWithTimeout(t *testing.T, name string, data []byte) (*Node, error) {
	t.Helper()
	type result struct {
		n   *Node
		err error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		n, err := Decode(name, data)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-time.After(fuzzTimeout):
		t.Fatalf("%s: Decode of %d bytes did not return within %v (started %v)", name, len(data), fuzzTimeout, start.Format(time.TimeOnly))
		return nil, nil
	}
}

// checkNode checks the invariants of a decoded tree: known kinds, no nil
// children, non-negative lines, unique map keys.
func checkNode(t *testing.T, file string, n *Node, depth int) {
	t.Helper()
	if depth > 100_000 {
		t.Fatalf("%s: tree deeper than %d", file, depth)
	}
	if n.Kind < Null || n.Kind > Map || n.Line < 0 {
		t.Fatalf("%s: bad node %+v", file, *n)
	}
	switch n.Kind {
	case List:
		for _, c := range n.List {
			if c == nil {
				t.Fatalf("%s: nil list item at line %d", file, n.Line)
			}
			checkNode(t, file, c, depth+1)
		}
	case Map:
		seen := make(map[string]bool, len(n.Map))
		for _, kv := range n.Map {
			if seen[kv.Key] {
				t.Fatalf("%s: duplicate key %q in a decoded map (line %d)", file, kv.Key, kv.Line)
			}
			seen[kv.Key] = true
			if kv.Value == nil || kv.Line < 0 {
				t.Fatalf("%s: bad entry %q at line %d", file, kv.Key, kv.Line)
			}
			checkNode(t, file, kv.Value, depth+1)
		}
	}
}
