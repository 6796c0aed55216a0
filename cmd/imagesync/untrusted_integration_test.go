package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/ledger"
)

// Tests of issue #9: a registry's answers are untrusted input. Each one runs
// against real registries (distribution 2.8 and 3) with a scripted hostile
// front where the lie needs one, and checks what reached the destination.

var evilTags = []string{"v1/../../../../victim/manifests/pwned", "v1?x=y", "v1#frag", "../v1", "-v1", strings.Repeat("t", 129)}

// Tags from tags/list that break the grammar are never copied nor put in a
// URL: a warning names registry and tag, a rule that selects them gets a
// failed job each, and the rest of the rule goes on.
func TestUntrustedTagsAreNotPaths(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		v1, _ := src.PushRandomImage(t, "lib/app", "v1", linuxAmd64, 1, 500, true, 901)
		v2, _ := src.PushRandomImage(t, "lib/app", "v2", linuxAmd64, 1, 500, false, 902)
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if strings.HasSuffix(r.URL.Path, "/tags/list") {
				c := faultproxy.Capture(forward, r)
				var page map[string]any
				_ = json.Unmarshal(c.Body, &page)
				tags, _ := page["tags"].([]any)
				for _, e := range evilTags {
					tags = append(tags, e)
				}
				page["tags"] = tags
				c.Body, _ = json.Marshal(page)
				c.Send(w, r)
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf(
			"%[1]s/lib/app: %[2]s/mirror/app\n%[1]s/lib/app:/^v2$/: %[2]s/regex/app\n", front.Host, dst.Host))
		r := runCLI(t, nil, "--images", images, "-o", "json", "--retries", "2")
		if r.code != exitSomeFail {
			t.Fatalf("exit %d, want %d", r.code, exitSomeFail)
		}
		assertDigest(t, dst, "mirror/app", "v1", v1)
		assertDigest(t, dst, "mirror/app", "v2", v2)
		assertDigest(t, dst, "regex/app", "v2", v2)
		if tags := dst.Tags(t, "mirror/app"); len(tags) != 2 {
			t.Errorf("mirror/app holds %v, want v1 and v2 only", tags)
		}
		noPathTricks(t, dst)
		rep := parseSyncReport(t, r)
		failed := 0
		for _, j := range rep.Jobs {
			if j.Action == "failed" {
				failed++
				if !strings.Contains(j.Destination, "/mirror/app") || !strings.Contains(j.Error, "not a valid tag") || j.Retries != 0 {
					t.Errorf("failed job %+v", j)
				}
			}
		}
		if failed != len(evilTags) || rep.Summary["copied"] != 3 {
			t.Errorf("%d failed jobs (want %d, one per invalid tag the all-tags rule selects), summary %v", failed, len(evilTags), rep.Summary)
		}
		for _, e := range evilTags {
			if !regexp.MustCompile(`invalid tag.*registry=` + regexp.QuoteMeta(front.Host) + `.*tag="?` + regexp.QuoteMeta(e)).MatchString(r.stderr) {
				t.Errorf("no warning naming the registry and the tag %q", e)
			}
		}
		if n := front.Count("", "victim") + front.Count("", "pwned"); n != 0 {
			t.Errorf("%d requests to the source carried an invalid tag", n)
		}
	})
}

// An index child whose digest is a path is refused; nothing is pushed.
func TestUntrustedIndexChildDigest(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		good, _ := src.PushRandomImage(t, "lib/app", "ok", linuxAmd64, 1, 400, true, 911)
		evil := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"x/../../../../victim/manifests/pwned2","size":100,"platform":{"os":"linux","architecture":"amd64"}}]}`)
		evilDigest := registrytest.Digest(evil)
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if strings.HasSuffix(r.URL.Path, "/manifests/evil") || strings.HasSuffix(r.URL.Path, "/manifests/"+evilDigest) {
				faultproxy.Captured{Status: http.StatusOK, Header: http.Header{"Content-Type": {registrytest.MediaTypeOCIIndex}, "Docker-Content-Digest": {evilDigest}}, Body: evil}.Send(w, r)
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:evil,ok: %[2]s/mirror/app\n", front.Host, dst.Host))
		r := runCLI(t, nil, "--images", images, "-o", "json", "--retries", "2")
		if r.code != exitSomeFail {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/app", "ok", good)
		if tags := dst.Tags(t, "mirror/app"); len(tags) != 1 {
			t.Errorf("mirror/app holds %v", tags)
		}
		noPathTricks(t, dst)
		if front.Count("", "victim") != 0 {
			t.Error("the child was fetched from the source by its fake digest")
		}
		for _, j := range parseSyncReport(t, r).Jobs {
			if strings.HasSuffix(j.Source, ":evil") && (j.Action != "failed" || !strings.Contains(j.Error, "invalid reference") || j.Retries != 0) {
				t.Errorf("evil job %+v", j)
			}
		}
	})
}

// A Link header that repeats its page stops the listing at once, one that
// always has a new next page stops at the page cap; those rules fail, the
// others go on.
//
// One registry kind: the front answers both listings itself, so the kind
// behind it changes nothing but the time (5,000 pages under -race).
func TestTagListLoopStops(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/other", "1", linuxAmd64, 1, 400, true, 921)
	var endless atomic.Int64
	front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		switch {
		case r.URL.Path == "/v2/lib/app/tags/list":
			w.Header().Set("Link", `</v2/lib/app/tags/list?last=a&n=1000>; rel="next"`)
			io.WriteString(w, `{"name":"lib/app","tags":["a"]}`)
		case r.URL.Path == "/v2/lib/endless/tags/list":
			n := endless.Add(1)
			w.Header().Set("Link", fmt.Sprintf(`</v2/lib/endless/tags/list?last=t%d&n=1000>; rel="next"`, n))
			fmt.Fprintf(w, `{"name":"lib/endless","tags":["t%d"]}`, n)
		default:
			forward.ServeHTTP(w, r)
		}
	})
	images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app: %[2]s/mirror/app\n%[1]s/lib/endless: %[2]s/mirror/endless\n%[1]s/lib/other:1: %[2]s/mirror/other\n", front.Host, dst.Host))
	r := runCLI(t, nil, "--images", images, "--retries", "3")
	if r.code != exitSomeFail || !strings.Contains(r.stderr, "repeats a page") || !strings.Contains(r.stderr, "more than 5000 pages") {
		t.Fatalf("exit %d", r.code)
	}
	if n := front.Count("GET", "/lib/app/tags/list"); n != 2 {
		t.Errorf("%d tag-list requests, want 2 (the loop seen on the second)", n)
	}
	if n := endless.Load(); n != 5000 {
		t.Errorf("%d pages of the endless listing fetched, want 5000", n)
	}
	assertDigest(t, dst, "mirror/other", "1", d)
}

// SIGTERM while a registry paginates forever: the listing stops, the run
// ends with 130.
func TestSIGTERMStopsAnEndlessListing(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		var page atomic.Int64
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if strings.HasSuffix(r.URL.Path, "/tags/list") {
				n := page.Add(1)
				time.Sleep(50 * time.Millisecond)
				w.Header().Set("Link", fmt.Sprintf(`</v2/lib/app/tags/list?last=t%d&n=1>; rel="next"`, n))
				fmt.Fprintf(w, `{"name":"lib/app","tags":["t%d"]}`, n)
				return
			}
			forward.ServeHTTP(w, r)
		})
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app: %s/mirror/app\n", front.Host, dst.Host))
		cmd := exec.Command(os.Args[0], "--images", images, "--ledger", filepath.Join(dir, "ledger.jsonl"))
		cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for page.Load() < 5 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		atSignal, signalled := page.Load(), time.Now()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("still listing a minute after SIGTERM (%d pages)", page.Load())
		}
		t.Logf("exited %v after SIGTERM, %d pages in all; stderr:\n%s", time.Since(signalled).Round(time.Millisecond), page.Load(), stderr.String())
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Fatalf("exit %d, want %d", code, exitInterrupted)
		}
		if after := page.Load() - atSignal; after > 4 {
			t.Errorf("%d more pages fetched after SIGTERM", after)
		}
	})
}

// The first interrupt stops verify from starting checks.
func TestInterruptStopsVerify(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, true, 931)
		interrupt := make(chan struct{})
		var heads atomic.Int64
		front := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
				if heads.Add(1) == 3 {
					close(interrupt)
				}
				time.Sleep(50 * time.Millisecond)
			}
			forward.ServeHTTP(w, r)
		})
		var dsts []string
		for i := range 40 {
			dsts = append(dsts, fmt.Sprintf("%s/m%d/app", front.Host, i))
		}
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: [%s]\n", src.Host, strings.Join(dsts, ", ")))
		var out, errb strings.Builder
		lookup := func(k string) (string, bool) {
			switch k {
			case "IMAGESYNC_LEDGER":
				return testLedger(t), true
			case "HOME":
				return filepath.Dir(testLedger(t)), true
			}
			return "", false
		}
		code := run(context.Background(), []string{"imagesync", "verify", "-o", "json", "--images", images, "--proc", "2"}, env{lookup: lookup, interrupt: interrupt}, &out, &errb)
		t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		if code != exitInterrupted {
			t.Fatalf("exit %d, want %d", code, exitInterrupted)
		}
		if n := heads.Load(); n >= 40 {
			t.Errorf("%d destination checks after the interrupt at the 3rd: verify went on", n)
		}
		if !strings.Contains(out.String(), "not checked") {
			t.Error("the report does not say which destinations were not checked")
		}
	})
}

// An endless /v2/ body does not hang the first contact.
func TestPingBodyBounded(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 941)
		var sent atomic.Int64
		front := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.URL.Path == "/v2/" {
				w.WriteHeader(http.StatusOK)
				chunk := []byte(strings.Repeat("{}", 16<<10))
				for sent.Load() < 1<<30 {
					n, err := w.Write(chunk)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
				return
			}
			forward.ServeHTTP(w, r)
		})
		stalled := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.URL.Path == "/v2/" {
				w.WriteHeader(http.StatusOK)
				_ = http.NewResponseController(w).Flush()
				select { // a body that never comes
				case <-r.Context().Done():
				case <-time.After(time.Minute):
				}
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[3]s/a/app\n%[2]s/lib/app:1: %[3]s/b/app\n", front.Host, stalled.Host, dst.Host))
		if r := runCLI(t, nil, "--images", images, "--timeout", "4s"); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "a/app", "1", d)
		assertDigest(t, dst, "b/app", "1", d)
		t.Logf("the endless /v2/ body got %d bytes out before imagesync stopped reading", sent.Load())
		if n := sent.Load(); n > 64<<20 {
			t.Errorf("%d bytes of /v2/ body sent: the ping did not stop reading", n)
		}
	})
}

// The manifest pushed is the one of the digest the HEAD decided, even when
// the tag moves between the HEAD and the GET; a registry sending other bytes
// for that digest fails the job.
func TestTagMovesBetweenHeadAndGet(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		a, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 951)
		b, rawB := src.PushRandomImage(t, "lib/app", "2", linuxAmd64, 1, 400, true, 952)
		moving := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/1") {
				r.URL.Path = strings.TrimSuffix(r.URL.Path, "1") + "2" // the tag moved after the HEAD
			}
			forward.ServeHTTP(w, r)
		})
		lying := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/"+a) {
				faultproxy.Captured{Status: http.StatusOK, Header: http.Header{"Content-Type": {registrytest.MediaTypeOCIManifest}, "Docker-Content-Digest": {a}}, Body: rawB}.Send(w, r)
				return
			}
			forward.ServeHTTP(w, r)
		})
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[3]s/moved/app\n%[2]s/lib/app:1: %[3]s/lied/app\n", moving.Host, lying.Host, dst.Host))
		ledgerPath := filepath.Join(dir, "ledger.jsonl")
		r := runCLI(t, nil, "--images", images, "-o", "json", "--ledger", ledgerPath, "--retries", "2")
		if r.code != exitSomeFail {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "moved/app", "1", a)
		if tags := dst.Tags(t, "lied/app"); len(tags) != 0 {
			t.Errorf("the lying source got %v pushed", tags)
		}
		for _, j := range parseSyncReport(t, r).Jobs {
			switch {
			case strings.Contains(j.Destination, "moved/app") && (j.Action != "copied" || j.Digest != a):
				t.Errorf("report %+v, want copied %s", j, a)
			case strings.Contains(j.Destination, "lied/app") && (j.Action != "failed" || !strings.Contains(j.Error, "registry sent bytes with digest "+b) || j.Retries != 0):
				t.Errorf("report %+v", j)
			}
		}
		l, err := ledger.Open(ledgerPath)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if e, ok := l.Manifest(dst.Host + "/moved/app:1"); !ok || e.Digest != a || e.SrcDigest != a {
			t.Errorf("ledger entry %+v %v, want digest %s", e, ok, a)
		}
		if _, ok := l.Manifest(dst.Host + "/lied/app:1"); ok {
			t.Error("the failed job is in the ledger")
		}
	})
}

// A registry that comes up late is pinged again by the job's next attempt;
// the attempts wait (backoff) instead of failing within milliseconds.
func TestLateRegistryIsRetried(t *testing.T) {
	// Serial: frees a port and listens on it again later; a test beside it could take it meanwhile.
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 961)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		late := ln.Addr().String()
		ln.Close()
		target, _ := url.Parse("http://" + src.Host)
		srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 10 * time.Second}
		t.Cleanup(func() { srv.Close() })
		// The registry comes up once the first attempt has failed.
		firstFailure := make(chan struct{})
		go func() {
			<-firstFailure
			l, err := net.Listen("tcp", late)
			if err != nil {
				t.Errorf("the late registry could not take its port: %v", err)
				return
			}
			_ = srv.Serve(l)
		}()
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/mirror/app\n", late, dst.Host))
		var out strings.Builder
		stderr := &watchWriter{want: "will retry", seen: firstFailure}
		lookup := func(k string) (string, bool) {
			switch k {
			case "IMAGESYNC_LEDGER":
				return testLedger(t), true
			case "HOME":
				return filepath.Dir(testLedger(t)), true
			}
			return "", false
		}
		start := time.Now()
		code := run(context.Background(), []string{"imagesync", "--images", images, "-o", "json", "--retries", "4"}, env{lookup: lookup}, &out, stderr)
		r := result{code: code, stdout: out.String(), stderr: stderr.String()}
		t.Logf("exit %d after %v\nstdout:\n%s\nstderr:\n%s", code, time.Since(start).Round(time.Millisecond), r.stdout, r.stderr)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/app", "1", d)
		rep := parseSyncReport(t, r)
		if len(rep.Jobs) != 1 || rep.Jobs[0].Retries == 0 {
			t.Errorf("jobs %+v: the copy should have needed a job retry", rep.Jobs)
		}
		if !regexp.MustCompile(`will retry.*after=\d`).MatchString(r.stderr) {
			t.Error("the retry and its wait are not logged")
		}
	})
}

// watchWriter collects output and closes seen once want appears in it.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.done && strings.Contains(w.b.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// What cannot succeed is not retried: an unknown certificate authority and
// a redirect loop fail the job at its first attempt.
func TestHopelessErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		plain, tlsReg := pair(t, kind, registrytest.Options{TLS: true})
		dst := registrytest.Start(t, kind, registrytest.Options{})
		plain.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 971)
		var blobGets atomic.Int64
		loop := faultproxy.Scripted(t, plain.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				blobGets.Add(1)
				http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[3]s/a/app\n%[2]s/lib/app:1: %[3]s/b/app\n", tlsReg.Host, loop.Host, dst.Host))
		r := runCLI(t, nil, "--images", images, "-o", "json", "--retries", "3")
		if r.code != exitAllFailed {
			t.Fatalf("exit %d, want %d", r.code, exitAllFailed)
		}
		rep := parseSyncReport(t, r)
		if n := rep.Summary["retries"]; n != 0 {
			t.Errorf("%v requests retried, want 0", n)
		}
		for _, j := range rep.Jobs {
			if j.Retries != 0 || j.Action != "failed" {
				t.Errorf("job %+v was retried", j)
			}
			if strings.Contains(j.Source, tlsReg.Host) && !strings.Contains(j.Error, "unknown authority") {
				t.Errorf("job %+v", j)
			}
			if strings.Contains(j.Source, loop.Host) && !strings.Contains(j.Error, "redirect") {
				t.Errorf("job %+v", j)
			}
		}
		if strings.Contains(r.stderr, "will retry") {
			t.Error("a hopeless job was queued again")
		}
		// Two blobs, each followed through 10 redirects once: no retry.
		if n := blobGets.Load(); n > 20 {
			t.Errorf("%d blob GETs against a redirect loop, want at most 20", n)
		}
	})
}

// uploadSessions checks that every upload session a registry opened was
// completed or cancelled: POST 202 = PUT 201 + DELETE 204.
func uploadSessions(t *testing.T, r *registrytest.Registry) (opened, completed, cancelled int) {
	t.Helper()
	for _, q := range r.Log.All() {
		switch {
		case q.Method == http.MethodPost && strings.HasSuffix(q.Path, "/blobs/uploads/") && q.Status == http.StatusAccepted:
			opened++
		case q.Method == http.MethodPut && strings.Contains(q.Path, "/blobs/uploads/") && q.Status == http.StatusCreated:
			completed++
		case q.Method == http.MethodDelete && strings.Contains(q.Path, "/blobs/uploads/") && q.Status == http.StatusNoContent:
			cancelled++
		}
	}
	if opened != completed+cancelled {
		t.Errorf("%d upload sessions opened, %d completed, %d cancelled: some were abandoned", opened, completed, cancelled)
	}
	return opened, completed, cancelled
}

// A mount the registry refuses falls back to a plain upload.
func TestRefusedMountFallsBack(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		reg := registrytest.Start(t, kind, registrytest.Options{})
		d, _ := reg.PushRandomImage(t, "lib/app", "1", linuxAmd64, 2, 3000, true, 981)
		front := faultproxy.Scripted(t, reg.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"no pull permission on the mount source"}]}`)
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[1]s/mirror/app\n", front.Host))
		if r := runCLI(t, nil, "--images", images, "--retries", "0"); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, reg, "mirror/app", "1", d)
		if n := front.Count(http.MethodPost, "/blobs/uploads/"); n < 6 {
			t.Errorf("%d POSTs: want a refused mount and a plain session per blob", n)
		}
		if _, completed, _ := uploadSessions(t, reg); completed != 3 {
			t.Errorf("%d blobs uploaded, want 3 (config and two layers)", completed)
		}
	})
}

// A registry that refuses monolithic PUTs (nginx's 413) gets chunked PATCH
// uploads, in smaller chunks when those are too large too; the refused
// sessions are cancelled.
func TestChunkedUploadFallback(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 6<<20, true, 991) // one layer > one 4 MiB chunk
		var refused, refusedPatches atomic.Int64
		front := faultproxy.Scripted(t, dst.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength != 0 {
				_, _ = io.Copy(io.Discard, r.Body)
				refused.Add(1)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, "<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center><hr><center>nginx</center></body></html>\n")
				return
			}
			if r.Method == http.MethodPatch && r.ContentLength > 1<<20 { // client_max_body_size 1m
				_, _ = io.Copy(io.Discard, r.Body)
				refusedPatches.Add(1)
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				return
			}
			forward.ServeHTTP(w, r)
		})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/mirror/app\n", src.Host, front.Host))
		r := runCLI(t, nil, "--images", images, "--retries", "1")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		raw := assertDigest(t, dst, "mirror/app", "1", d)
		var m struct{ Layers []struct{ Digest string } }
		_ = json.Unmarshal(raw, &m)
		for _, l := range m.Layers {
			if !dst.HasBlob(t, "mirror/app", l.Digest) {
				t.Errorf("layer %s missing", l.Digest)
			}
		}
		// The 6 MiB layer goes in 4 MiB chunks refused as too large, then in 1 MiB ones.
		if refused.Load() == 0 || refusedPatches.Load() == 0 || front.Count(http.MethodPatch, "/blobs/uploads/") < 7 {
			t.Errorf("%d monolithic PUTs refused, %d PATCHes refused, %d PATCHes: the fallback was not exercised", refused.Load(), refusedPatches.Load(), front.Count(http.MethodPatch, "/blobs/uploads/"))
		}
		if _, _, cancelled := uploadSessions(t, dst); cancelled < int(refused.Load()) {
			t.Errorf("%d sessions cancelled, %d refused", cancelled, refused.Load())
		}
		if !strings.Contains(r.stderr, "chunked") {
			t.Error("the switch to chunked uploads is not logged")
		}
		if probs, r := verifyJSON(t, "--images", images, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("verify --deep: exit %d, %v", r.code, probs)
		}
	})
}

// Upload sessions abandoned after an error are cancelled with DELETE.
func TestAbandonedUploadsAreCancelled(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 3, 20<<10, true, 995)
		var puts atomic.Int64
		faults := faultproxy.Start(t, dst.Host, faultproxy.Plan{Seed: 5, Rate5xx: 1, Only: func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && puts.Add(1) <= 3
		}})
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/mirror/app\n", src.Host, faults.Host))
		if r := runCLI(t, nil, "--images", images, "--retries", "2", "--proc", "1"); r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "mirror/app", "1", d)
		if c := faults.Counts(); c.ServerErrors != 3 {
			t.Fatalf("%d PUTs failed, want 3", c.ServerErrors)
		}
		if _, _, cancelled := uploadSessions(t, dst); cancelled != 3 {
			t.Errorf("%d sessions cancelled, want the 3 whose PUT failed", cancelled)
		}
	})
}

// verify reports a rule it could not check as a job with an error problem,
// and exits 1.
func TestVerifyFailsWhenItCannotCheck(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, true, 1001)
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		gone := ln.Addr().String()
		ln.Close()
		images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[2]s/lib/app\n%[3]s/lib/lost: %[2]s/lib/lost\n", src.Host, dst.Host, gone))
		if r := runCLI(t, nil, "--images", images, "--retries", "0"); r.code != exitSomeFail {
			t.Fatalf("sync: exit %d", r.code)
		}
		probs, r := verifyJSON(t, "--images", images)
		if r.code != exitSomeFail {
			t.Fatalf("verify: exit %d, want %d", r.code, exitSomeFail)
		}
		if kinds := probs[dst.Host+"/lib/lost"]; len(kinds) != 1 || kinds[0] != "error" || len(probs) != 1 {
			t.Errorf("problems %v, want one error for %s/lib/lost", probs, dst.Host)
		}
		if !strings.Contains(r.stdout, `"error": 1`) || !strings.Contains(r.stdout, `"mismatch": 0`) || !strings.Contains(r.stdout, `"ok": 1`) {
			t.Errorf("summary:\n%s", r.stdout)
		}
		tr := runCLI(t, nil, "verify", "--images", images)
		if tr.code != exitSomeFail || !strings.Contains(tr.stdout, "error "+gone+"/lib/lost") {
			t.Errorf("verify table: exit %d", tr.code)
		}
	})
}

// TLS settings are those of each request's own host: insecure: true for a
// registry does not cover its token realm or a redirect to another host;
// that host's own certs.d does.
func TestInsecureDoesNotCoverOtherHosts(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 1011)
		// The other host: a TLS registry whose certificate names localhost,
		// signed by a CA nobody trusts yet. It holds the same image, so a
		// redirect to it can succeed once it is trusted.
		other := registrytest.Start(t, kind, registrytest.Options{TLS: true})
		other.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 1011)
		_, port, _ := net.SplitHostPort(other.Host)
		otherHost := "localhost:" + port
		tokenReg := faultproxy.ScriptedTLS(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://%s/token",service="test"`, otherHost))
			w.WriteHeader(http.StatusUnauthorized)
		})
		redirecting := faultproxy.ScriptedTLS(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, "https://"+otherHost+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			forward.ServeHTTP(w, r)
		})
		dir := t.TempDir()
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s:\n  username: robot\n  password: Realm-Pa55word\n  insecure: true\n%s:\n  insecure: true\n", tokenReg.Host, redirecting.Host))
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[3]s/a/app\n%[2]s/lib/app:1: %[3]s/b/app\n", tokenReg.Host, redirecting.Host, dst.Host))
		r := runCLI(t, nil, "--images", images, "--auth", auth, "-o", "json", "--retries", "0", "--no-ledger")
		if r.code != exitAllFailed {
			t.Fatalf("exit %d, want %d", r.code, exitAllFailed)
		}
		for _, j := range parseSyncReport(t, r).Jobs {
			if !strings.Contains(j.Error, "unknown authority") || !strings.Contains(j.Error, otherHost) {
				t.Errorf("job %+v: want the other host's certificate refused", j)
			}
		}
		if n := len(other.Log.All()); n != 0 {
			t.Errorf("the other host got %d requests (Basic credentials to the realm among them?) over an untrusted certificate: %v", n, other.Log.All())
		}
		if tokenReg.Count(http.MethodGet, "/v2/") == 0 || redirecting.Count(http.MethodGet, "/blobs/") == 0 {
			t.Fatal("the insecure registries were not reached: the test proves nothing")
		}
		for _, repo := range []string{"a/app", "b/app"} {
			if tags := dst.Tags(t, repo); len(tags) != 0 {
				t.Errorf("%s got %v", repo, tags)
			}
		}

		// Trusted through its own certs.d entry, the other host is used.
		home := t.TempDir()
		certs := filepath.Join(home, ".docker", "certs.d", otherHost)
		if err := os.MkdirAll(certs, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, certs, "ca.crt", string(other.CAPEM))
		r = runCLI(t, map[string]string{"HOME": home}, "--images", images, "--auth", auth, "-o", "json", "--retries", "0", "--no-ledger")
		if r.code != exitSomeFail {
			t.Fatalf("trusted: exit %d, want %d (the realm answers 404)", r.code, exitSomeFail)
		}
		assertDigest(t, dst, "b/app", "1", d)
		if other.Log.Count(http.MethodGet, `/token`) == 0 || other.Log.Count(http.MethodGet, `/blobs/`) == 0 {
			t.Errorf("the trusted other host was not used: %v", other.Log.All())
		}
	})
}

// Every output goes through one redactor: a token server echoing the
// credentials and a signed redirect URL leave no secret in stdout, stderr,
// --log, -o json, the plan and verify tables or the report files (0600).
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 1021)
		const user, pw, sig = "robot", "Echo-Pa55word-42", "SIGf00dfeed5ecret"
		pair64 := base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
		pw64 := base64.StdEncoding.EncodeToString([]byte(pw))
		var tokenAsks atomic.Int64
		echo := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			if r.URL.Path == "/token" {
				tokenAsks.Add(1)
				got, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
				_, gotPw, _ := strings.Cut(string(got), ":")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials: %s (header %s, password %s, %s)"}]}`,
					got, r.Header.Get("Authorization"), gotPw, base64.StdEncoding.EncodeToString([]byte(gotPw)))
				return
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="echo"`, r.Host))
			w.WriteHeader(http.StatusUnauthorized)
		})
		var storageHits atomic.Int64
		signed := faultproxy.Scripted(t, src.Host, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/storage/"):
				storageHits.Add(1)
				if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
					c.Close() // the download breaks: the error quotes the URL
				}
			case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
				http.Redirect(w, r, "/storage/blob?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature="+sig, http.StatusTemporaryRedirect)
			default:
				forward.ServeHTTP(w, r)
			}
		})
		dir := t.TempDir()
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s:\n  username: %s\n  password: %s\n", echo.Host, user, pw))
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[3]s/a/app\n%[2]s/lib/app:1: %[3]s/b/app\n", echo.Host, signed.Host, dst.Host))
		logFile, failedFile := filepath.Join(dir, "run.log"), filepath.Join(dir, "failed.yaml")
		var outputs []string
		check := func(what string, text string) {
			t.Helper()
			outputs = append(outputs, text)
			for _, secret := range []string{pw, pair64, pw64, sig, "AKIAEXAMPLE"} {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds the secret %q", what, secret)
				}
			}
		}
		r := runCLI(t, nil, "--images", images, "--auth", auth, "--debug", "--log", logFile, "-o", "json", "--output-failed-images", failedFile, "--retries", "0")
		if r.code != exitAllFailed {
			t.Fatalf("exit %d", r.code)
		}
		check("stdout (-o json)", r.stdout)
		check("stderr", r.stderr)
		check("--log", readFile(t, logFile))
		check("--output-failed-images", readFile(t, failedFile))
		if fi, err := os.Stat(failedFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("failed-images file mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		p := runCLI(t, nil, "plan", "--images", images, "--auth", auth, "--debug")
		check("plan table", p.stdout)
		check("plan stderr", p.stderr)
		pj := runCLI(t, nil, "plan", "-o", "json", "--images", images, "--auth", auth)
		check("plan -o json", pj.stdout)
		v := runCLI(t, nil, "verify", "--images", images, "--auth", auth)
		check("verify table", v.stdout)
		check("verify stderr", v.stderr)
		check("the ledger", readFile(t, testLedger(t)))
		if tokenAsks.Load() == 0 || storageHits.Load() == 0 {
			t.Fatalf("token asks %d, storage hits %d: the secrets were never echoed", tokenAsks.Load(), storageHits.Load())
		}
		all := strings.Join(outputs, "\n")
		if !strings.Contains(all, "bad credentials") || !strings.Contains(all, "/storage/blob") {
			t.Error("the outputs do not carry the errors at all: the test proves nothing")
		}
	})
}

// A credential helper's stderr does not reach the terminal.
func TestCredentialHelperStderrHidden(t *testing.T) {
	// Serial: credentialHelper puts a helper on PATH with t.Setenv, which is process-wide.
	forEachKind(t, testCredentialHelperStderrHidden)
}

func testCredentialHelperStderrHidden(t *testing.T, kind registrytest.Kind) {
	src, dst := pair(t, kind, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, true, 1031)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nread server\necho 'debug: unlocking with Helper-Secret-99' >&2\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"\",\"Secret\":\"\"}\\n' \"$server\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-noisy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	docker := dockerConfig(t, `{"credsStore":"noisy"}`)
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/mirror/app\n", src.Host, dst.Host))
	cmd := exec.Command(os.Args[0], "--images", images, "--docker-config", docker, "--ledger", filepath.Join(dir, "ledger.jsonl"))
	cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+dir, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(string(out), "Helper-Secret-99") {
		t.Error("the credential helper's stderr reached the terminal")
	}
	assertDigest(t, dst, "mirror/app", "1", d)
}
