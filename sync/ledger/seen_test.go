package ledger

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RecordSeen keeps the first time a source reference was seen at a digest,
// across a reopen; a new digest starts again; a read-only open answers from
// the file and records nothing.
func TestRecordSeen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	first, err := l.RecordSeen("reg/a:v1", "sha256:aa")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if again, _ := l.RecordSeen("reg/a:v1", "sha256:aa"); !again.Equal(first) {
		t.Errorf("same digest: %v, want the first time %v", again, first)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(p)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := ro.FirstSeen("reg/a:v1"); !ok || s.Digest != "sha256:aa" || !s.Time.Equal(first) {
		t.Errorf("read-only: %+v %v", s, ok)
	}
	if _, err := ro.RecordSeen("reg/b:v1", "sha256:bb"); err != nil {
		t.Errorf("read-only RecordSeen: %v", err)
	}
	ro.Close()
	l, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.FirstSeen("reg/b:v1"); ok {
		t.Error("a read-only ledger recorded")
	}
	if again, _ := l.RecordSeen("reg/a:v1", "sha256:aa"); !again.Equal(first) {
		t.Errorf("after reopen: %v, want %v", again, first)
	}
	moved, _ := l.RecordSeen("reg/a:v1", "sha256:cc")
	if !moved.After(first) {
		t.Errorf("a moved tag keeps its old time %v", moved)
	}
	if s, _ := l.FirstSeen("reg/a:v1"); s.Digest != "sha256:cc" || !s.Time.Equal(moved) {
		t.Errorf("after the move: %+v", s)
	}
}

// TagsIn lists a destination repository's tags (not another repository's
// whose name it prefixes); ForgetManifest drops one, across a reopen.
func TestTagsInAndForget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"reg/m/app:v1", "reg/m/app:v2", "reg/m/app2:v1", "reg/m/app@sha256:" + strings.Repeat("a", 64)} {
		if err := l.RecordManifest(dst, Entry{Digest: "sha256:x", Src: "src/app:v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.TagsIn("reg/m/app"); len(got) != 2 || got["v1"].Src != "src/app:v1" {
		t.Fatalf("TagsIn: %v", got)
	}
	if err := l.ForgetManifest("reg/m/app:v1"); err != nil {
		t.Fatal(err)
	}
	if got := l.TagsIn("reg/m/app"); len(got) != 1 {
		t.Errorf("after forgetting (in memory): %v", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.Manifest("reg/m/app:v1"); ok {
		t.Error("forgotten entry is back after reopen")
	}
	if got := l.TagsIn("reg/m/app"); len(got) != 1 {
		t.Errorf("after reopen: %v", got)
	}
}
