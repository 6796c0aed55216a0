package main

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"

	"github.com/imagesync/imagesync/sync/ledger"
)

// folderState is every file of a folder with its size, mode and time.
func folderState(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s %v %d %x\n", e.Name(), fi.Mode(), fi.ModTime().UnixNano(), data)
	}
	return b.String()
}

// `plan` writes nothing: not the ledger (no header, lock, repair or
// compaction), and no ledger where there was none.
func TestPlanWritesNoLedger(t *testing.T) {
	t.Parallel()
	memRegistry := func() string {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	src, dst := memRegistry(), memRegistry()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(src + "/ns/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules := writeFile(t, dir, "images.yaml", src+"/ns/app:v1: "+dst+"/ns/app\n")
	ledgerDir := filepath.Join(dir, "cache")
	ledgerFile := filepath.Join(ledgerDir, "ledger.jsonl")

	if r := runCLI(t, nil, "plan", "--images", rules, "--ledger", ledgerFile); r.code != 0 || !strings.Contains(r.stdout, "copy") {
		t.Fatalf("plan before any sync: exit %d", r.code)
	}
	if _, err := os.Stat(ledgerDir); !os.IsNotExist(err) {
		t.Fatalf("plan created %s: %v", ledgerDir, err)
	}
	if r := runCLI(t, nil, "sync", "--images", rules, "--ledger", ledgerFile); r.code != 0 {
		t.Fatalf("sync: exit %d", r.code)
	}
	before := folderState(t, ledgerDir)
	if !strings.Contains(before, "ledger.jsonl ") {
		t.Fatalf("sync wrote no ledger: %s", before)
	}
	for _, args := range [][]string{{}, {"--trust-ledger"}} {
		r := runCLI(t, nil, append([]string{"plan", "--images", rules, "--ledger", ledgerFile}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "skip") {
			t.Fatalf("plan %v after the sync: exit %d", args, r.code)
		}
		if after := folderState(t, ledgerDir); after != before {
			t.Fatalf("plan %v changed the ledger's folder:\nbefore:\n%s\nafter:\n%s", args, before, after)
		}
	}
}

// oneAppInMemory pushes ns/app:v1 into an in-memory registry and writes a
// rule copying it to mirror/app; the ledger path is in the same folder.
func oneAppInMemory(t *testing.T) (host, rules, ledgerFile, digest string) {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/ns/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules = writeFile(t, dir, "images.yaml", host+"/ns/app:v1: "+host+"/mirror/app\n")
	ledgerFile = filepath.Join(dir, "ledger.db")
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return host, rules, ledgerFile, d.String()
}

// `plan` and a second sync beside a running sync: the ledger is shared,
// neither refuses nor goes without it (issue #23).
func TestPlanBesideRunningSync(t *testing.T) {
	t.Parallel()
	host, rules, ledgerFile, want := oneAppInMemory(t)
	held, err := ledger.Open(ledgerFile)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := runCLI(t, nil, "plan", "--images", rules, "--ledger", ledgerFile)
	if r.code != 0 || !strings.Contains(r.stdout, "copy") || strings.Contains(r.stderr, "without it") {
		t.Fatalf("plan beside a sync: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "sync", "--images", rules, "--ledger", ledgerFile); r.code != 0 {
		t.Fatalf("a second sync on a ledger in use: exit %d, %s", r.code, r.stderr)
	}
	if e, ok := held.Manifest(host + "/mirror/app:v1"); !ok || e.Digest != want {
		t.Errorf("the first run does not see what the second recorded: %+v %v", e, ok)
	}
}

// A sync whose last batch finds the ledger held by a long read (a ledger
// export of a big ledger) says so and waits for it, then records.
func TestSyncWaitsForAPlanReading(t *testing.T) {
	t.Parallel()
	host, rules, ledgerFile, want := oneAppInMemory(t)
	if r := runCLI(t, nil, "sync", "--ledger", ledgerFile, host+"/ns/app:v1", host+"/first/app:v1"); r.code != 0 {
		t.Fatalf("first sync: exit %d", r.code)
	}
	reader, err := bolt.Open(ledgerFile, 0o600, &bolt.Options{ReadOnly: true}) // as a long export holds it
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(1500 * time.Millisecond)
		close(released)
		reader.Close()
	}()
	r := runCLI(t, nil, "sync", "--images", rules, "--ledger", ledgerFile)
	select {
	case <-released:
	default:
		t.Error("the sync wrote while the reader held the ledger")
	}
	if r.code != 0 || !strings.Contains(r.stderr, "waiting to write this run's last facts") {
		t.Fatalf("sync beside a reader: exit %d, %s", r.code, r.stderr)
	}
	l, err := ledger.OpenReadOnly(ledgerFile)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if e, ok := l.Manifest(host + "/mirror/app:v1"); !ok || e.Digest != want {
		t.Errorf("ledger after the waiting sync: %+v, %v; want %s", e, ok, want)
	}
}
