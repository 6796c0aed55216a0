package cfgfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadKeepDuplicates(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, data string
		keys       []string
		dups       []int // Dup of each top-level entry
	}{
		{"images.yaml", "a/b/c: x/y/z\nq/r/s: [x/y/s]\na/b/c: x/y/w\n", []string{"a/b/c", "q/r/s", "a/b/c"}, []int{0, 0, 1}},
		{"images.json", "{\n\"a/b/c\": \"x/y/z\",\n\"a/b/c\": \"x/y/w\",\n\"a/b/c\": \"x/y/v\"\n}\n", []string{"a/b/c", "a/b/c", "a/b/c"}, []int{0, 2, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, strict := Load(p)
			if strict == nil {
				t.Fatal("Load accepted a duplicate key")
			}
			n, err := LoadKeepDuplicates(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Map) != len(tc.keys) {
				t.Fatalf("%d entries, want %d", len(n.Map), len(tc.keys))
			}
			for i, kv := range n.Map {
				if kv.Key != tc.keys[i] || kv.Dup != tc.dups[i] {
					t.Errorf("entry %d: %q dup %d, want %q dup %d", i, kv.Key, kv.Dup, tc.keys[i], tc.dups[i])
				}
			}
			errs := Duplicates(p, n)
			if len(errs) == 0 || errs[0].Error() != strict.Error() {
				t.Errorf("Duplicates: %v; want first %q", errs, strict)
			}
		})
	}
	// Nested duplicates are found too; a file that is broken otherwise is still an error.
	p := filepath.Join(dir, "auth.yaml")
	_ = os.WriteFile(p, []byte("quay.io:\n  username: a\n  username: b\n"), 0o600)
	n, err := LoadKeepDuplicates(p)
	if err != nil || len(Duplicates(p, n)) != 1 {
		t.Errorf("nested duplicate: err %v, duplicates %v", err, Duplicates(p, n))
	}
	p = filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(p, []byte("a: [b\n"), 0o600)
	if _, err := LoadKeepDuplicates(p); err == nil {
		t.Error("malformed YAML accepted")
	}
	if _, err := LoadKeepDuplicates(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}
