package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/sync/ledger"
)

// Configuration problems of issue #9: each one exits 2 before any request
// (the rules point at a closed loopback port).

func TestDollarInPasswordError(t *testing.T) {
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	auth := writeFile(t, dir, "auth.yaml", "harbor.example.com:\n  username: robot\n  password: S3cr3t$Pa55\n")
	r := runCLI(t, nil, "--images", images, "--auth", auth)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d", r.code, exitUsage)
	}
	for _, want := range []string{"auth.yaml:3", `"harbor.example.com"`, `"password"`, "$$"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
	for _, part := range []string{"Pa55", "S3cr3t"} {
		if strings.Contains(r.stderr+r.stdout, part) {
			t.Errorf("the output prints %q, a part of the password", part)
		}
	}
}

func TestEmptyRuleFile(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "# nothing yet\n", "{}\n"} {
		name := "images.yaml"
		if content == "{}\n" {
			name = "images.json"
		}
		images := writeFile(t, dir, name, content)
		for _, cmd := range [][]string{{"sync"}, {"plan"}, {"verify"}} {
			r := runCLI(t, nil, append(cmd, "--images", images)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "no rules") || !strings.Contains(r.stderr, "warning: the rule file holds no rules") || !strings.Contains(r.stderr, name) {
				t.Errorf("%s on %q: exit %d, want %d with a warning naming the file", cmd[0], content, r.code, exitUsage)
			}
		}
	}
}

func TestLogMustNotBeTheLedger(t *testing.T) {
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	l := filepath.Join(dir, "ledger.jsonl")
	lg, err := ledger.Open(l)
	if err != nil {
		t.Fatal(err)
	}
	lg.Close()
	before := readFile(t, l)
	link := filepath.Join(dir, "log-link")
	if err := os.Symlink(l, link); err != nil {
		t.Skipf("no symlinks: %v", err)
	}
	for _, logPath := range []string{l, link, filepath.Join(dir, ".", "ledger.jsonl")} {
		r := runCLI(t, nil, "--images", images, "--ledger", l, "--log", logPath)
		if r.code != exitUsage || !strings.Contains(r.stderr, "is the ledger") {
			t.Errorf("--log %s: exit %d, want %d", logPath, r.code, exitUsage)
		}
		if got := readFile(t, l); got != before {
			t.Fatalf("--log %s changed the ledger", logPath)
		}
	}
}

// A run through a symlink to a ledger another run has open shares it: it
// runs, and what it records is in the real file (issue #23: runs share
// the ledger).
func TestLedgerSharedThroughSymlink(t *testing.T) {
	host, images, real, want := oneAppInMemory(t)
	held, err := ledger.Open(real)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	link := filepath.Join(filepath.Dir(real), "other-name.db")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("no symlinks: %v", err)
	}
	if r := runCLI(t, nil, "--images", images, "--ledger", link); r.code != exitOK {
		t.Fatalf("a second run through a symlink: exit %d, want %d", r.code, exitOK)
	}
	if e, ok := held.Manifest(host + "/mirror/app:v1"); !ok || e.Digest != want {
		t.Errorf("the run through the symlink recorded %+v %v, want %s in the real ledger", e, ok, want)
	}
}
