package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/imagetest"
	"github.com/imagesync/imagesync/internal/registrytest"
)

const (
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
)

// pushRepeated pushes to repo:tag an index listing another index n times,
// which lists one image n times (issue #21's crafted case: 6.4 KB of JSON
// for n = 30). It returns the top digest.
func pushRepeated(t *testing.T, r *registrytest.Registry, repo, tag string, n int) string {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("the one layer of a repeated image")
	img := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		mtOCIManifest, r.PushBlob(t, repo, config), len(config), r.PushBlob(t, repo, layer), len(layer))
	imgDigest := r.PushManifest(t, repo, registrytest.Digest([]byte(img)), mtOCIManifest, []byte(img))
	list := func(mt, d string, size int) string {
		entries := make([]string, n)
		for i := range entries {
			entries[i] = fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}}`, mt, d, size)
		}
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, mtOCIIndex, strings.Join(entries, ","))
	}
	mid := list(mtOCIManifest, imgDigest, len(img))
	midDigest := r.PushManifest(t, repo, registrytest.Digest([]byte(mid)), mtOCIIndex, []byte(mid))
	return r.PushManifest(t, repo, tag, mtOCIIndex, []byte(list(mtOCIIndex, midDigest, len(mid))))
}

// The 30 × 30 repeated-children tree costs one request per distinct
// manifest and blob plus the usual checks — from a registry (both kinds)
// and from an image layout; plan and verify read each manifest once too.
// It made 3,136 requests from a registry and 3,630 from a layout.
func TestRepeatedChildrenOnce(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		top := pushRepeated(t, src, "lib/tree", "1", 30)
		dir := t.TempDir()
		from, to := src.Host+"/lib/tree:1", dst.Host+"/mirror/tree:1"

		src.Log.Reset()
		dst.Log.Reset()
		if r := runCLI(t, nil, "plan", from, to, "--no-ledger"); r.code != 0 {
			t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
		}
		if n := src.Log.Count(http.MethodGet, "/manifests/"); n != 3 {
			t.Errorf("plan read %d manifests from the source, want 3", n)
		}

		src.Log.Reset()
		dst.Log.Reset()
		if r := runCLI(t, nil, "sync", from, to, "--no-ledger"); r.code != 0 {
			t.Fatalf("sync: exit %d\n%s", r.code, r.stderr)
		}
		assertDigest(t, dst, "mirror/tree", "1", top)
		srcN, dstN := len(src.Log.All()), len(dst.Log.All())
		t.Logf("%s: sync sent %d requests to the source, %d to the destination", kind, srcN, dstN)
		if n := src.Log.Count(http.MethodGet, "/manifests/"); n != 3 {
			t.Errorf("sync read %d manifests, want 3", n)
		}
		if n := src.Log.Count(http.MethodGet, "/blobs/"); n != 2 {
			t.Errorf("sync read %d blobs, want 2", n)
		}
		if n := dst.Log.Count(http.MethodPut, "/manifests/"); n != 3 {
			t.Errorf("sync PUT %d manifests, want 3", n)
		}
		// The usual checks: ping, the tag's HEAD; per blob HEAD or POST,
		// and PUT; the mount probe.
		if srcN > 8 || dstN > 14 {
			t.Errorf("sync sent %d requests to the source (want at most 8) and %d to the destination (at most 14)", srcN, dstN)
		}

		dst.Log.Reset()
		if r := runCLI(t, nil, "verify", from, to, "--no-ledger"); r.code != 0 {
			t.Fatalf("verify: exit %d\n%s", r.code, r.stderr)
		}
		if n := dst.Log.Count(http.MethodGet, "/manifests/"); n > 3 {
			t.Errorf("verify read %d manifests from the destination, want 3", n)
		}

		// From an image layout: the same tree, one PUT per manifest.
		layout := filepath.Join(dir, "bundle")
		if r := runCLI(t, nil, "sync", from, "oci:"+layout, "--no-ledger"); r.code != 0 {
			t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
		}
		dst.Log.Reset()
		if r := runCLI(t, nil, "sync", "oci:"+layout, dst.Host+"/imported", "--no-ledger"); r.code != 0 {
			t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
		}
		assertDigest(t, dst, "imported/lib/tree", "1", top)
		if n := dst.Log.Count(http.MethodPut, "/manifests/"); n != 3 {
			t.Errorf("import PUT %d manifests, want 3", n)
		}
		if n := len(dst.Log.All()); n > 14 {
			t.Errorf("import sent %d requests to the destination, want at most 14", n)
		}
	})
}

// floodFront answers the referrers API of every digest with k referrers
// never seen before (each a valid artifact whose subject is that digest),
// and serves them: the referrer explosion of issue #21. delay slows each
// referrers answer. It counts the referrers it made.
func floodFront(t *testing.T, target string, k int, delay time.Duration) (*faultproxy.Front, *atomic.Int64) {
	var made sync.Map // digest → raw
	var n atomic.Int64
	front := faultproxy.Scripted(t, target, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		p := r.URL.Path
		if i := strings.Index(p, "/referrers/"); i >= 0 && r.Method == http.MethodGet {
			time.Sleep(delay)
			subject := p[i+len("/referrers/"):]
			var entries []string
			for j := range k {
				raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":"application/x-flood","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":1},"annotations":{"n":"%d"}}`,
					mtOCIManifest, mtOCIManifest, subject, j)
				d := registrytest.Digest([]byte(raw))
				made.Store(d, raw)
				n.Add(1)
				entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"artifactType":"application/x-flood","digest":%q,"size":%d}`, mtOCIManifest, d, len(raw)))
			}
			body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, mtOCIIndex, strings.Join(entries, ","))
			w.Header().Set("Content-Type", mtOCIIndex)
			io.WriteString(w, body)
			return
		}
		if i := strings.Index(p, "/manifests/"); i >= 0 {
			if raw, ok := made.Load(p[i+len("/manifests/"):]); ok {
				w.Header().Set("Content-Type", mtOCIManifest)
				w.Header().Set("Docker-Content-Digest", registrytest.Digest([]byte(raw.(string))))
				w.Header().Set("Content-Length", fmt.Sprint(len(raw.(string))))
				if r.Method == http.MethodGet {
					io.WriteString(w, raw.(string))
				}
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	return front, &n
}

// binary starts the test binary as imagesync with args.
func binary(t *testing.T, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	return binaryAt(t, os.Args[0], args...)
}

// binaryAt starts the imagesync at path (the test binary acting as main, or
// a real build) with args.
func binaryAt(t *testing.T, path string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// A registry answering 10 new referrers for every digest: plan --referrers
// of one image stops following them with a warning, within seconds and in
// bounded memory (it ran 12 minutes and grew to 1.5 GB).
func TestReferrerFloodBounded(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 1024, true, 5)
	front, made := floodFront(t, src.Host, 10, 0)
	// Memory is measured on the static binary as released: the test binary
	// runs under -race in make test, and the race detector's shadow memory
	// (hundreds of MiB on a busy machine) would be measured instead.
	bin := os.Args[0]
	if runtime.GOOS == "linux" {
		bin = imagetest.Binary(t, t.TempDir(), runtime.GOARCH)
	}
	start := time.Now()
	cmd, stderr := binaryAt(t, bin, "plan", "--referrers", front.Host+"/lib/app:1", dst.Host+"/mirror/app:1", "--no-ledger")
	peak := watchRSS(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("plan --referrers still running after 2 minutes; %d referrers made", made.Load())
	}
	rss := peak()
	t.Logf("plan --referrers: exit %d after %v, %d referrers listed, %d fetched, peak RSS %d KiB (getrusage, which counts the forking test's pages: %d KiB)",
		cmd.ProcessState.ExitCode(), time.Since(start).Round(time.Millisecond), made.Load(), front.Count(http.MethodGet, "/manifests/sha256:"), rss, maxRSS(cmd.ProcessState))
	if !strings.Contains(stderr.String(), "more referrers than followed") {
		t.Errorf("no warning about the referrers left out:\n%s", tail(stderr.String(), 2000))
	}
	if n := front.Count(http.MethodGet, "/manifests/sha256:"); n > 600 {
		t.Errorf("%d referrer manifests read, want at most about 512", n)
	}
	if rss > 400<<10 {
		t.Errorf("peak RSS %d KiB", rss)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stopWithin sends sig to cmd and returns how long it took to exit and its
// exit code.
func stopWithin(t *testing.T, cmd *exec.Cmd, sig os.Signal) (time.Duration, int) {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("still running 30 s after the signal")
	}
	return time.Since(start), cmd.ProcessState.ExitCode()
}

// The first SIGTERM ends a referrer flood and a long blob upload within a
// second or two with exit 130: the upload session is deleted, the tag never
// written, and the summary says what was not done (issue #21, #23).
func TestFirstSignalStops(t *testing.T) {
	// Serial: asserts the exit within 5 s of the signal; a test beside it on 2 cores eats that margin.
	t.Run("referrer flood", func(t *testing.T) {
		src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
		src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 1024, true, 6)
		front, made := floodFront(t, src.Host, 10, 20*time.Millisecond)
		cmd, stderr := binary(t, "plan", "--referrers", front.Host+"/lib/app:1", dst.Host+"/mirror/app:1", "--no-ledger")
		waitFor(t, "the flood", func() bool { return made.Load() >= 100 })
		took, code := stopWithin(t, cmd, syscall.SIGTERM)
		t.Logf("stopped after %v, exit %d, %d referrers made\n%s", took, code, made.Load(), tail(stderr.String(), 6000))
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d", code, exitInterrupted)
		}
		if took > 5*time.Second { // 2 s asked; generous on a loaded machine
			t.Errorf("took %v to stop", took)
		}
	})
	t.Run("long copy", func(t *testing.T) {
		src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
		src.PushRandomImage(t, "lib/big", "1", linuxAmd64, 1, 8<<20, true, 7)
		slow := throttled(t, src.Host, 256<<10) // 32 s for the layer
		cmd, stderr := binary(t, "sync", slow+"/lib/big:1", dst.Host+"/mirror/big:1", "--no-ledger")
		waitFor(t, "the upload", func() bool { return dst.Log.Count(http.MethodPut, "/blobs/uploads/") > 0 })
		time.Sleep(500 * time.Millisecond)
		took, code := stopWithin(t, cmd, syscall.SIGTERM)
		t.Logf("stopped after %v, exit %d\n%s", took, code, tail(stderr.String(), 1500))
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d", code, exitInterrupted)
		}
		if took > 5*time.Second {
			t.Errorf("took %v to stop", took)
		}
		if tags := dst.Tags(t, "mirror/big"); len(tags) != 0 {
			t.Errorf("the destination was tagged: %v", tags)
		}
		if dst.Log.Count(http.MethodDelete, "/blobs/uploads/") == 0 {
			t.Errorf("the upload session was not deleted: %v", dst.Log.All())
		}
		if !strings.Contains(stderr.String(), "interrupted: stopping the transfers in flight") ||
			!strings.Contains(stderr.String(), "0 copied, 0 skipped, 0 filtered, 0 failed, 1 not started") {
			t.Errorf("stderr does not say what was not done")
		}
	})
}

func maxRSS(ps *os.ProcessState) int64 {
	if maxRSSOf == nil || ps == nil {
		return 0
	}
	return maxRSSOf(ps)
}

// Ctrl-C typed on a terminal (a pty under script(1)) during a long copy
// stops it within a second or two: exit 130, the upload session deleted,
// no tag written, the notice on a line of its own (issue #23).
func TestCtrlCUnderPTY(t *testing.T) {
	// Serial: asserts the exit within 5 s of Ctrl-C; a test beside it on 2 cores eats that margin.
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not found")
	}
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	src.PushRandomImage(t, "lib/big", "1", linuxAmd64, 1, 8<<20, true, 8)
	slow := throttled(t, src.Host, 256<<10)
	home := t.TempDir()
	self := installAs(t, filepath.Join(home, "bin"), "imagesync")
	cmd := exec.Command(script, "-qec", fmt.Sprintf("stty cols 80 rows 50; exec %s sync %s/lib/big:1 %s/mirror/big:1 --no-ledger", self, slow, dst.Host), "/dev/null")
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, "TERM=xterm", "NO_COLOR=1")
	keys, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	waitFor(t, "the upload", func() bool { return dst.Log.Count(http.MethodPut, "/blobs/uploads/") > 0 })
	time.Sleep(500 * time.Millisecond)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	start := time.Now()
	if _, err := keys.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running 30 s after Ctrl-C:\n%q", out.String())
	}
	took := time.Since(start)
	t.Logf("stopped after %v, exit %d", took, cmd.ProcessState.ExitCode())
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d, want %d:\n%q", code, exitInterrupted, out.String())
	}
	if took > 5*time.Second { // a second or two asked; generous on a loaded machine
		t.Errorf("took %v to stop", took)
	}
	if tags := dst.Tags(t, "mirror/big"); len(tags) != 0 {
		t.Errorf("the destination was tagged: %v", tags)
	}
	if dst.Log.Count(http.MethodDelete, "/blobs/uploads/") == 0 {
		t.Error("the upload session was not deleted")
	}
	if !strings.Contains(out.String(), "imagesync: interrupted: stopping the transfers in flight") || !strings.Contains(out.String(), "1 not started") {
		t.Errorf("the terminal does not say what was not done:\n%q", out.String())
	}
}
