package ledger

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An upload session is visible at once, survives a reopen, moves on with
// each record, is dropped by ForgetUploadSession, and is never exported;
// the file keeps its mode; a record holding a known secret is withheld.
func TestUploadSessions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	const repo, d = "reg:5000/ns/app", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	loc := "http://reg:5000/v2/ns/app/blobs/uploads/u1-STATE"
	if _, ok := l.UploadSession(repo, d); ok {
		t.Fatal("a session before any was recorded")
	}
	for _, off := range []int64{0, 16 << 20, 32 << 20} {
		if err := l.RecordUploadSession(repo, d, Upload{Loc: loc, Off: off, Hash: []byte{1, 2, byte(off >> 24)}}); err != nil {
			t.Fatal(err)
		}
	}
	if u, ok := l.UploadSession(repo, d); !ok || u.Loc != loc || u.Off != 32<<20 {
		t.Fatalf("pending: %+v %v", u, ok)
	}
	if _, ok := l.UploadSession("reg:5000/ns/other", d); ok {
		t.Fatal("another repository's session")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", fi.Mode(), err)
	}
	l, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := l.UploadSession(repo, d); !ok || u.Loc != loc || u.Off != 32<<20 || string(u.Hash) != "\x01\x02\x02" {
		t.Fatalf("reopened: %+v %v", u, ok)
	}
	var out bytes.Buffer
	if err := l.Export(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "uploads/") || strings.Contains(out.String(), "STATE") {
		t.Fatalf("export shows the session:\n%s", out.String())
	}
	if err := l.ForgetUploadSession(repo, d); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.UploadSession(repo, d); ok {
		t.Fatal("forgotten session still pending")
	}
	l.Guard(func(s string) string { return strings.ReplaceAll(s, "TOKEN", "***") })
	if err := l.RecordUploadSession(repo, "sha256:ff", Upload{Loc: loc + "TOKEN"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.UploadSession(repo, "sha256:ff"); ok || l.Withheld() != 1 {
		t.Fatalf("a session holding a secret was kept (withheld %d)", l.Withheld())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, ok := ro.UploadSession(repo, d); ok {
		t.Fatal("forgotten session still in the file")
	}
	if err := ro.RecordUploadSession(repo, d, Upload{Loc: loc}); err != nil {
		t.Fatalf("read-only record: %v", err)
	}
}
