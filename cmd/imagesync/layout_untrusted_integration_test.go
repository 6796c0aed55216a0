//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// Tests of issue #22 through the real binary: layouts crafted by the test
// (FIFOs, links to /dev/zero, sparse files) never hang a run, and the
// first signal is honoured.

// startMain starts imagesync as its own process.
func startMain(t *testing.T, args ...string) (*exec.Cmd, *strings.Builder, *strings.Builder) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, "IMAGESYNC_LEDGER="+filepath.Join(home, "ledger.jsonl"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

// waitMain waits up to limit for cmd to end and returns its exit code.
func waitMain(t *testing.T, cmd *exec.Cmd, limit time.Duration, stderr *strings.Builder) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running after %v; stderr:\n%s", limit, stderr.String())
	}
	t.Logf("exit %d; stderr:\n%s", cmd.ProcessState.ExitCode(), stderr.String())
	return cmd.ProcessState.ExitCode()
}

// A manifest blob that is a FIFO: plan and sync say so at once (they used
// to hang in open(), deaf to the first SIGINT).
func TestLayoutFIFOManifestDoesNotHang(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	d := handLayout(t, src, "x.io/a/b:1")
	p := filepath.Join(src, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	_ = os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("oci:%s: oci:%s\n", src, filepath.Join(dir, "out")))
	for _, sub := range []string{"plan", "sync"} {
		cmd, stdout, stderr := startMain(t, sub, "--images", images)
		code := waitMain(t, cmd, 30*time.Second, stderr)
		if code == 0 || !strings.Contains(stdout.String()+stderr.String(), "is a FIFO") {
			t.Errorf("%s: exit %d, want a failure naming the FIFO; stdout:\n%s", sub, code, stdout)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "out", "index.json")); err == nil {
		t.Error("an image was written from a layout whose manifest is a FIFO")
	}
}

// verify --deep reads a layout blob no further than its descriptor's size
// (a link to /dev/zero is refused outright), and stops at the first SIGTERM
// while hashing a big one.
func TestVerifyDeepBounded(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	handLayout(t, src, "x.io/a/b:1")
	out := filepath.Join(dir, "out")
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("oci:%s: oci:%s\n", src, out))
	if r := runCLI(t, nil, "--images", images); r.code != 0 {
		t.Fatalf("sync: exit %d", r.code)
	}
	layer := filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(registryDigest("not really a tar, but bytes with a digest"), "sha256:"))

	t.Run("link to /dev/zero", func(t *testing.T) {
		_ = os.Remove(layer)
		if err := os.Symlink("/dev/zero", layer); err != nil {
			t.Fatal(err)
		}
		cmd, stdout, stderr := startMain(t, "verify", "--deep", "--images", images)
		code := waitMain(t, cmd, 30*time.Second, stderr)
		if code == 0 || !strings.Contains(stdout.String()+stderr.String(), "symbolic link") {
			t.Errorf("exit %d, want a problem naming the link; stdout:\n%s", code, stdout)
		}
	})
	t.Run("a huge sparse blob, SIGTERM", func(t *testing.T) {
		// A layout whose layer says 64 GiB and is a sparse file of that
		// size, and a copy of it (the layer hard-linked): hashing would
		// take minutes; the first SIGTERM ends it.
		big := filepath.Join(dir, "big")
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
		layerDigest := registryDigest("sixty-four gibibytes of zeros, supposedly")
		m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			registryDigest(string(cfg)), len(cfg), layerDigest, int64(64<<30)))
		blob := func(root, digest string) string {
			return filepath.Join(root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
		}
		_ = os.MkdirAll(filepath.Join(big, "blobs", "sha256"), 0o755)
		_ = os.WriteFile(blob(big, registryDigest(string(cfg))), cfg, 0o644)
		_ = os.WriteFile(blob(big, registryDigest(string(m))), m, 0o644)
		f, err := os.Create(blob(big, layerDigest))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(64 << 30); err != nil {
			t.Skip("no sparse files:", err)
		}
		f.Close()
		writeFile(t, big, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
		writeFile(t, big, "index.json", fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"x.io/big:1"}}]}`, registryDigest(string(m)), len(m)))
		bigCopy := filepath.Join(dir, "bigcopy")
		_ = os.MkdirAll(filepath.Join(bigCopy, "blobs", "sha256"), 0o755)
		for _, name := range []string{"oci-layout", "index.json", filepath.Join("blobs", "sha256", filepath.Base(blob(big, layerDigest))), filepath.Join("blobs", "sha256", filepath.Base(blob(big, registryDigest(string(cfg))))), filepath.Join("blobs", "sha256", filepath.Base(blob(big, registryDigest(string(m)))))} {
			if err := os.Link(filepath.Join(big, name), filepath.Join(bigCopy, name)); err != nil {
				t.Fatal(err)
			}
		}
		images2 := writeFile(t, dir, "images2.yaml", fmt.Sprintf("oci:%s: oci:%s\n", big, bigCopy))
		cmd, _, stderr := startMain(t, "verify", "--deep", "--images", images2)
		time.Sleep(2 * time.Second)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		signalled := time.Now()
		code := waitMain(t, cmd, 60*time.Second, stderr)
		t.Logf("ended %v after SIGTERM", time.Since(signalled).Round(time.Millisecond))
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d (the first SIGTERM ends it)", code, exitInterrupted)
		}
		if time.Since(signalled) > 20*time.Second {
			t.Errorf("took %v after SIGTERM", time.Since(signalled))
		}
	})
}

func registryDigest(s string) string { return registrytest.Digest([]byte(s)) }

// layoutImage stores a one-layer image in dir's blobs and returns its index.json entry named name.
func layoutImage(t *testing.T, dir, name, layer string) (entry, digest string) {
	t.Helper()
	put := func(b []byte) string { return putLayoutBlob(t, dir, b) }
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		put(cfg), len(cfg), put([]byte(layer)), len(layer)))
	d := put(m)
	return fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":%q}}`, d, len(m), name), d
}

// Layout names as other tools write them: a short name ("nginx:1") is
// found by its normalised form, whether a rule takes every image or names
// it; two entries that name one image with different digests are
// ambiguous: a warning, and that image is not copied (neither wins).
func TestLayoutShortAndAmbiguousNames(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	short, shortDigest := layoutImage(t, src, "nginx:1", "short")
	a, _ := layoutImage(t, src, "redis:7", "one redis")
	b, _ := layoutImage(t, src, "docker.io/library/redis:7", "another redis")
	writeFile(t, src, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	writeFile(t, src, "index.json", `{"schemaVersion":2,"manifests":[`+short+","+a+","+b+`]}`)

	out := filepath.Join(dir, "one")
	images := writeFile(t, dir, "one.yaml", fmt.Sprintf("oci:%s:nginx:1: oci:%s\n", src, out))
	if r := runCLI(t, nil, "--images", images); r.code != 0 {
		t.Fatalf("a rule naming the short name: exit %d", r.code)
	}
	if got := layoutNames(t, out); got["docker.io/library/nginx:1"] != shortDigest {
		t.Errorf("copied %v, want docker.io/library/nginx:1 = %s", got, shortDigest)
	}

	all := filepath.Join(dir, "all")
	images = writeFile(t, dir, "all.yaml", fmt.Sprintf("oci:%s: oci:%s\n", src, all))
	r := runCLI(t, nil, "--images", images)
	if r.code != exitSomeFail {
		t.Errorf("every image: exit %d, want %d (the ambiguous one failed)", r.code, exitSomeFail)
	}
	if !strings.Contains(r.stderr, "names one image more than once") || !strings.Contains(r.stderr, "docker.io/library/redis:7") || !strings.Contains(r.stderr, "is ambiguous") {
		t.Error("no warning and failure naming the ambiguous name")
	}
	got := layoutNames(t, all)
	if got["docker.io/library/nginx:1"] != shortDigest {
		t.Errorf("the short name was not copied: %v", got)
	}
	for n := range got {
		if strings.Contains(n, "redis") {
			t.Errorf("an ambiguous image was copied as %s", n)
		}
	}
}

// A FILE.partial this program did not make (here: a directory with a
// user's file) is refused with exit 2 by sync, plan and verify, naming it;
// nothing in it is used or deleted, and no archive is written.
func TestLayoutForeignStagingRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	handLayout(t, src, "x.io/a/b:1")
	file := filepath.Join(dir, "bundle.tar")
	_ = os.MkdirAll(file+".partial", 0o755)
	thesis := writeFile(t, file+".partial", "thesis.txt", "years of work")
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("oci:%s: oci-archive:%s\n", src, file))
	for _, sub := range []string{"sync", "plan", "verify"} {
		r := runCLI(t, nil, sub, "--images", images)
		if r.code != exitUsage || !strings.Contains(r.stderr, file+".partial") || !strings.Contains(r.stderr, "not a staging directory imagesync made") {
			t.Errorf("%s: exit %d, want %d and the staging directory named", sub, r.code, exitUsage)
		}
	}
	if readFile(t, thesis) != "years of work" {
		t.Error("the user's file changed")
	}
	if entries, _ := os.ReadDir(file + ".partial"); len(entries) != 1 {
		t.Errorf("the directory holds %d entries now", len(entries))
	}
	if _, err := os.Lstat(file); err == nil {
		t.Error("an archive was written")
	}
}
