package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/imagetest"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/ledger"
)

// bigImage pushes an image of one layer of size random bytes (the
// registries do not look inside a layer) and returns the manifest's and
// the layer's digests.
func bigImage(t *testing.T, r *registrytest.Registry, repo, tag string, size int, seed uint64) (digest, layer string) {
	t.Helper()
	blob := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = rng.Read(blob)
	layer = r.PushBlob(t, repo, blob)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layer + `"]}}`)
	cfgDigest := r.PushBlob(t, repo, cfg)
	raw := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cfgDigest, len(cfg), layer, size)
	return r.PushManifest(t, repo, tag, "application/vnd.oci.image.manifest.v1+json", []byte(raw)), layer
}

// blobHash reads a blob from the registry itself and hashes what it holds.
func blobHash(t *testing.T, r *registrytest.Registry, repo, digest string) string {
	t.Helper()
	resp, err := http.Get("http://" + r.Direct + "/v2/" + repo + "/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s: %s", digest, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// A large blob's upload whose connection breaks halfway resumes in the same
// session from the offset the registry reports, where the registry can:
// distribution 3 keeps the bytes of a cut request and resumes there;
// distribution 2.8 cancels a session once a cut request wrote part of its
// bytes (its upload state no longer matches), so only a break before a
// chunk's bytes reached it resumes there, and a cut chunk costs a fresh
// upload. The destination's bytes are counted at a proxy in front of it.
func TestUploadResumesInSession(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	for _, tc := range []struct {
		kind    registrytest.Kind
		before  bool    // the break comes before a chunk's bytes are forwarded
		maxSent float64 // bytes the destination receives, in blobs
		minSent float64
	}{
		{registrytest.Distribution3, false, 1.15, 1},
		{registrytest.Distribution3, true, 1.15, 1},
		{registrytest.Distribution2, true, 1.15, 1},
		{registrytest.Distribution2, false, 2.1, 1.5}, // the session is gone: a fresh upload
	} {
		t.Run(fmt.Sprintf("%s/before=%v", tc.kind, tc.before), func(t *testing.T) {
			t.Parallel()
			src, dst := pair(t, tc.kind, registrytest.Options{})
			digest, layer := bigImage(t, src, "lib/big", "1", size, 7)
			cut := faultproxy.StartBreaker(t, dst.Host)
			at := size * 55 / 100 // midway through the second 32 MiB chunk
			if tc.before {
				at = size * 40 / 100 // the cut comes at the second chunk's start
			}
			cut.CutAt(int64(at), tc.before)
			read := layerReads(layer)
			front := faultproxy.Scripted(t, src.Host, read.Script)
			r := runCLI(t, nil, "--no-ledger", front.Host+"/lib/big:1", cut.Host+"/mirror/big:1")
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if cut.Cuts() != 1 {
				t.Fatalf("%d connections cut, want 1", cut.Cuts())
			}
			sent := float64(cut.Forwarded()) / size
			t.Logf("%s: the destination received %.3f× the blob", tc.kind, sent)
			if sent > tc.maxSent || sent < tc.minSent {
				t.Errorf("the destination received %.3f× the blob, want %.2f–%.2f", sent, tc.minSent, tc.maxSent)
			}
			// A resume reads the source from the last acknowledged chunk's
			// end, or the offset the registry reported (a Range read, the
			// hash state kept), not from the start. (What the source sent
			// counts what socket buffers took ahead of the reader too: a
			// resume when distribution 3 answered 416, still writing what
			// the cut PATCH sent, has made 1.36×.)
			srcRead := float64(read.Sent()) / size
			t.Logf("the source sent %.3f× the blob in %d reads: %+v", srcRead, len(read.Log()), read.Log())
			if tc.maxSent < 2 {
				if srcRead >= 1.5 {
					t.Errorf("the source sent %.3f× the blob, want less than 1.5× (resumed reads from the last chunk)", srcRead)
				}
				for i, e := range read.Log() {
					if i > 0 && (e.Start < 32<<20 || e.Range == "") {
						t.Errorf("source read %d started at byte %d (Range %q), want a Range read from a chunk's end", i, e.Start, e.Range)
					}
				}
			}
			assertDigest(t, dst, "mirror/big", "1", digest)
			if got := blobHash(t, dst, "mirror/big", layer); got != layer {
				t.Errorf("the destination's layer hashes to %s, want %s", got, layer)
			}
			if strings.Contains(r.stderr+r.stdout, "_state=") {
				t.Error("the output shows an upload session's state")
			}
		})
	}
}

// A run of the real binary killed (SIGKILL) or interrupted (SIGINT) at 60%
// of a 256 MiB blob's upload leaves the session in the ledger; the next run
// asks the registry where the session stands and sends only the rest
// (distribution 3, which keeps what a cut request wrote), reading the
// source from the session's offset. Where the session is gone (deleted at
// the registry: a restart, a purge) or refused (distribution 2.8 cancels a
// session a cut request wrote part of), or the ledger's hash state lies,
// the next run falls back to a fresh upload and succeeds. The destination's bytes are counted at a proxy in
// front of it; the ledger never shows the session, and forgets it once the
// blob landed.
func TestKilledUploadResumes(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("builds the linux release binary")
	}
	if testing.Short() {
		t.Skip("integration test")
	}
	bin := imagetest.Binary(t, t.TempDir(), runtime.GOARCH)
	// The 256 MiB case is the measure the issue asked for; the others take
	// 80 MiB, past largeBlob's 64 MiB and into the third 32 MiB chunk at
	// 60%: every byte crosses two proxies in this (race-instrumented) test
	// process, and five blobs of 256 MiB made this the last test to finish
	// in make test (174 s beside the others, 31 s alone).
	const big, small = 256 << 20, 80 << 20
	for _, tc := range []struct {
		name      string
		kind      registrytest.Kind
		size      int
		interrupt bool    // Ctrl-C (SIGINT) instead of SIGKILL: the session is left open
		gone      bool    // the session is deleted at the registry before the second run
		badHash   bool    // the ledger's hash state is altered before the second run
		min, max  float64 // bytes the second run sends, in blobs
	}{
		{name: "resumes", kind: registrytest.Distribution3, size: big, max: 0.45},
		{name: "interrupted resumes", kind: registrytest.Distribution3, size: small, interrupt: true, max: 0.45},
		// A fresh upload, plus what the refused or missing session's resume
		// pushed into the socket buffers before the answer: a few MiB
		// whatever the blob's size (1.14× once of 80 MiB), far from the
		// blob sent twice.
		{name: "session gone", kind: registrytest.Distribution3, size: small, gone: true, min: 1, max: 1.25},
		// the resumed attempt's digest check fails at the end: a fresh upload
		{name: "hash state wrong", kind: registrytest.Distribution3, size: small, badHash: true, min: 1, max: 1.5},
		{name: "session refused", kind: registrytest.Distribution2, size: small, min: 1, max: 1.25},
	} {
		t.Run(string(tc.kind)+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			size := int64(tc.size)
			src, dst := pair(t, tc.kind, registrytest.Options{})
			digest, layer := bigImage(t, src, "lib/big", "1", tc.size, 11)
			cut := faultproxy.StartBreaker(t, dst.Host)
			read := layerReads(layer)
			front := faultproxy.Scripted(t, src.Host, read.Script)
			dir := t.TempDir()
			ledgerPath := filepath.Join(dir, "ledger.db")
			args := []string{"--ledger", ledgerPath, front.Host + "/lib/big:1", cut.Host + "/mirror/big:1"}
			repoKey := cut.Host + "/mirror/big"

			// The first run is killed once 60% of the blob reached the
			// destination, and once the ledger holds the session (its
			// batches are written every 200ms: the kill waits for one).
			var session ledger.Upload
			procs := make(chan *os.Process, 1)
			cut.Watch(size*60/100, func() {
				p := <-procs
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if l, err := ledger.OpenReadOnly(ledgerPath); err == nil {
						u, ok := l.UploadSession(repoKey, layer)
						l.Close()
						if ok {
							session = u
							break
						}
					}
				}
				if tc.interrupt {
					_ = p.Signal(os.Interrupt)
				} else {
					_ = p.Kill()
				}
			})
			cmd, stderr := binaryAt(t, bin, args...)
			procs <- cmd.Process
			want := -1 // killed
			if tc.interrupt {
				want = 130
			}
			if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != want {
				t.Fatalf("first run: %v, want exit %d\n%s", err, want, stderr)
			}
			if tc.interrupt { // the last batch, written at the end, may have moved the session on
				l, err := ledger.OpenReadOnly(ledgerPath)
				if err != nil {
					t.Fatal(err)
				}
				var ok bool
				session, ok = l.UploadSession(repoKey, layer)
				l.Close()
				if !ok {
					t.Fatal("the interrupted run dropped its session from the ledger")
				}
			}
			if tc.badHash {
				l, err := ledger.Open(ledgerPath)
				if err != nil {
					t.Fatal(err)
				}
				bad := session
				bad.Hash = append([]byte(nil), session.Hash...)
				bad.Hash[10] ^= 0xff // in the chaining state, past the magic: it unmarshals, and leads elsewhere
				if err := l.RecordUploadSession(repoKey, layer, bad); err != nil {
					t.Fatal(err)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			first, firstRead := cut.Forwarded(), read.Sent()
			t.Logf("killed after %.3f× the blob reached the destination (ledger: offset %d)", float64(first)/float64(size), session.Off)
			if first < size/2 || first >= size {
				t.Fatalf("killed after %d bytes: not mid-upload", first)
			}
			if !strings.HasPrefix(session.Loc, "http://"+cut.Host+"/v2/mirror/big/blobs/uploads/") || strings.Contains(session.Loc, "?") {
				t.Fatalf("the ledger's session is at %q, want the registry's own upload URL", session.Loc)
			}
			if fi, err := os.Stat(ledgerPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("ledger mode %v (%v), want 0600", fi.Mode(), err)
			}
			if r := runCLI(t, nil, "ledger", "export", "--ledger", ledgerPath); r.code != 0 || strings.Contains(r.stdout, "uploads/") || strings.Contains(r.stdout, "_state") {
				t.Fatalf("ledger export: exit %d, shows the session: %v", r.code, strings.Contains(r.stdout, "uploads/"))
			}
			if tc.gone { // the registry no longer has it
				deleteSession(t, strings.Replace(session.Loc, cut.Host, dst.Direct, 1), cut.Host, dst.Direct)
			}

			cmd = exec.Command(bin, append(args, "-o", "json", "--debug")...)
			cmd.Env = append(os.Environ(), "HOME="+dir)
			var stdout, stderr2 strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr2
			if err := cmd.Run(); err != nil {
				t.Fatalf("second run: %v\n%s", err, stderr2.String())
			}
			again := float64(cut.Forwarded()-first) / float64(size)
			t.Logf("the second run sent %.3f× the blob", again)
			if again < tc.min || again > tc.max {
				t.Errorf("the second run sent %.3f× the blob, want %.2f–%.2f", again, tc.min, tc.max)
			}
			// Resumed, the source is read from where the ledger's session
			// stood (its hash state kept), not from the start.
			srcRead := read.Sent() - firstRead
			t.Logf("the second run read %.3f× the blob from the source", float64(srcRead)/float64(size))
			// (a resume within the run, when distribution 3 answered 416
			// while it still wrote what the killed run sent, reads again from
			// the offset it reported: a little more)
			if tc.max < 1 && (srcRead > size-session.Off+size/20 || len(session.Hash) == 0) && !tc.interrupt {
				t.Errorf("the second run read %d bytes from the source, want at most %d (from the session's offset; hash state kept: %v)", srcRead, size-session.Off+size/20, len(session.Hash) > 0)
			}
			assertDigest(t, dst, "mirror/big", "1", digest)
			if got := blobHash(t, dst, "mirror/big", layer); got != layer {
				t.Errorf("the destination's layer hashes to %s, want %s", got, layer)
			}
			if out := stdout.String() + stderr2.String(); strings.Contains(out, "_state=") || regexp.MustCompile(`/blobs/uploads/[^\s"]*\?`).MatchString(out) {
				t.Errorf("the output shows an upload session's URL: %q", regexp.MustCompile(`.{0,200}(/blobs/uploads/[^\s"]*\?|_state=).{0,100}`).FindAllString(out, 3))
			}
			l, err := ledger.OpenReadOnly(ledgerPath)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, ok := l.UploadSession(repoKey, layer); ok {
				t.Error("the ledger still holds the session of a blob that landed")
			}
		})
	}
}

// deleteSession cancels an upload session at the registry. The kept
// location has no query: the registry's status answer names the session
// with the state a DELETE needs. The registry may still be writing what the
// killed run's last request sent (distribution 3 then refuses the DELETE
// with 416 for a while): it is asked again.
func deleteSession(t *testing.T, loc, from, to string) {
	t.Helper()
	for try := 0; ; try++ {
		resp, err := http.Get(loc)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("GET session: %v %v", resp, err)
		}
		resp.Body.Close()
		req, _ := http.NewRequest(http.MethodDelete, strings.Replace(resp.Header.Get("Location"), from, to, 1), nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNoContent:
			return
		case resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || try == 100:
			t.Fatalf("DELETE session: %s", resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// layerReads counts what the source sends of the layer (and logs each read
// of it with its Range).
func layerReads(layer string) *faultproxy.Cutter {
	return &faultproxy.Cutter{Match: func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer)
	}}
}

// A registry that refuses chunked uploads (405 to PATCH) gets a large blob
// in one PUT, with one warning: the resumable path steps aside for the run.
func TestChunksRefusedLargeBlobGoesInOnePut(t *testing.T) {
	t.Parallel()
	// One registry kind: the refusal is the front's, and a 65 MiB blob
	// through this race-instrumented process is not cheap.
	t.Run(string(registrytest.Distribution3), func(t *testing.T) {
		src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
		digest, layer := bigImage(t, src, "lib/big", "1", 65<<20, 13)
		front := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodPatch {
				w.WriteHeader(http.StatusMethodNotAllowed)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"chunked uploads are not supported"}]}`)
				return
			}
			forward.ServeHTTP(w, r)
		})
		r := runCLI(t, nil, "--no-ledger", src.Host+"/lib/big:1", front.Host+"/mirror/big:1")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if n := strings.Count(r.stderr, "refused a chunked upload"); n != 1 {
			t.Errorf("%d warnings about refused chunks, want 1", n)
		}
		if n := front.Count(http.MethodPatch, "/blobs/uploads/"); n != 1 {
			t.Errorf("%d PATCHes, want the one refused", n)
		}
		assertDigest(t, dst, "mirror/big", "1", digest)
		if got := blobHash(t, dst, "mirror/big", layer); got != layer {
			t.Errorf("the destination's layer hashes to %s, want %s", got, layer)
		}
	})
}

// A ledger session whose location is not the destination registry's (a
// ledger file edited, or written by a tool of its own) is never asked: the
// upload starts afresh, and the other host sees no request (no credentials
// go there).
func TestLedgerSessionElsewhereIsNotAsked(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	elsewhere := faultproxy.Scripted(t, "", func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.Header().Set("Range", "0-1048575")
		w.WriteHeader(http.StatusNoContent)
	})
	ledgerPath := filepath.Join(t.TempDir(), "ledger.db")
	for i, loc := range []string{
		"http://" + elsewhere.Host + "/v2/mirror/big%d/blobs/uploads/u1", // another host
		"http://" + dst.Host + "/v2/mirror/big%d/blobs/uploads/u1?sig=x", // a query
	} {
		repo := fmt.Sprintf("mirror/big%d", i)
		digest, layer := bigImage(t, src, fmt.Sprintf("lib/big%d", i), "1", 65<<20, uint64(17+i)) // not mountable from the last one
		l, err := ledger.Open(ledgerPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.RecordUploadSession(dst.Host+"/"+repo, layer, ledger.Upload{Loc: fmt.Sprintf(loc, i), Off: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		dst.Log.Reset()
		r := runCLI(t, nil, "--ledger", ledgerPath, src.Host+fmt.Sprintf("/lib/big%d:1", i), dst.Host+"/"+repo+":1")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if n := len(elsewhere.Seen()); n != 0 {
			t.Fatalf("the other host got %d requests", n)
		}
		if n := dst.Log.Count(http.MethodGet, "/blobs/uploads/"); n != 0 {
			t.Fatalf("%d status requests to the registry, want none", n)
		}
		if n := dst.Log.Count(http.MethodPatch, "/blobs/uploads/"); n != 3 {
			t.Fatalf("%d PATCHes, want the three of a fresh upload (65 MiB in 32 MiB chunks)", n)
		}
		assertDigest(t, dst, repo, "1", digest)
		if got := blobHash(t, dst, repo, layer); got != layer {
			t.Errorf("the destination's layer hashes to %s, want %s", got, layer)
		}
		ro, err := ledger.OpenReadOnly(ledgerPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ro.UploadSession(dst.Host+"/"+repo, layer); ok {
			t.Error("the run kept the session it did not use")
		}
		ro.Close()
	}
}
