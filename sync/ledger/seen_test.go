package ledger

import (
	"path/filepath"
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
