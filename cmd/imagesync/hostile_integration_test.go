package main

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/ledger"
)

// A sync of 30 images, indexes included, through 10% 429s, 5% 5xx and 3%
// connection resets on both sides ends with every digest right.
func TestHostileNetwork(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	plan := func(seed int64) faultproxy.Plan {
		return faultproxy.Plan{Seed: seed, Rate429: 0.10, Rate5xx: 0.05, RateReset: 0.03}
	}
	srcFaults := faultproxy.Start(t, src.Host, plan(1))
	dstFaults := faultproxy.Start(t, dst.Host, plan(2))

	want := map[string]string{}
	var rules strings.Builder
	for i := range 30 {
		repo := fmt.Sprintf("lib/app%d", i)
		if i%5 == 0 {
			want[repo], _, _ = src.PushIndex(t, repo, "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, i%2 == 0, int64(700+i))
		} else {
			want[repo], _ = src.PushRandomImage(t, repo, "1", linuxAmd64, 2, 20<<10, i%2 == 0, int64(700+i))
		}
		fmt.Fprintf(&rules, "%s/%s:1: %s/mirror/app%d\n", srcFaults.Host, repo, dstFaults.Host, i)
	}
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", rules.String())
	r := runCLI(t, nil, "--images", images, "--proc", "4", "--retries", "5")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for i := range 30 {
		assertDigest(t, dst, fmt.Sprintf("mirror/app%d", i), "1", want[fmt.Sprintf("lib/app%d", i)])
	}
	for _, p := range []*faultproxy.Proxy{srcFaults, dstFaults} {
		c := p.Counts()
		t.Logf("faults injected: %+v", c)
		if c.TooMany == 0 || c.ServerErrors == 0 || c.ResetsResponse+c.ResetsRequest == 0 {
			t.Errorf("the plan injected too little to prove anything: %+v", c)
		}
	}
	m := regexp.MustCompile(`(\d+) retried`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatal("the summary does not count retries")
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Error("the summary counts no retries")
	}
	srcFaults.SetPlan(faultproxy.Plan{}) // check the mirror, not the network
	dstFaults.SetPlan(faultproxy.Plan{})
	if probs, r := verifyJSON(t, "--images", images, "--deep"); r.code != 0 || len(probs) != 0 {
		t.Errorf("verify --deep after the hostile run: exit %d, problems %v", r.code, probs)
	}
}

// With Retry-After: 2 on a 429, the run waits at least that long.
func TestRetryAfterWaits(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, true, 81)
	var once atomic.Bool
	faults := faultproxy.Start(t, src.Host, faultproxy.Plan{Seed: 1, Rate429: 1, RetryAfter: "2",
		Only: func(r *http.Request) bool {
			return strings.Contains(r.URL.Path, "/manifests/") && once.CompareAndSwap(false, true)
		}})
	images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/lib/app\n", faults.Host, dst.Host))
	start := time.Now()
	if r := runCLI(t, nil, "--images", images); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if took := time.Since(start); took < 2*time.Second { // a lower bound only
		t.Errorf("the run took %v, less than the 2s Retry-After", took)
	}
	if c := faults.Counts(); c.TooMany != 1 {
		t.Fatalf("%d 429s injected, want 1", c.TooMany)
	}
	assertDigest(t, dst, "lib/app", "1", d)
}

// A 403 on one repository fails that job at once; the others succeed.
func TestPermanentDenialFailsAtOnce(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	a, _ := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 1, 300, true, 91)
	src.PushRandomImage(t, "lib/b", "1", linuxAmd64, 1, 300, true, 92)
	target, _ := url.Parse("http://" + dst.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	var denied atomic.Int32
	front := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/team/denied/") {
			denied.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/a:1: %[2]s/team/ok\n%[1]s/lib/b:1: %[2]s/team/denied\n", src.Host, front))
	failed := filepath.Join(dir, "failed.yaml")
	r := runCLI(t, nil, "--images", images, "--retries", "3", "--output-failed-images", failed)
	if r.code != exitSomeFail {
		t.Fatalf("exit %d, want %d", r.code, exitSomeFail)
	}
	if n := denied.Load(); n != 1 {
		t.Errorf("the denied repository was asked %d times, want 1 (no retry)", n)
	}
	assertDigest(t, dst, "team/ok", "1", a)
	if f := readFile(t, failed); !strings.Contains(f, front+"/team/denied:1") || !strings.Contains(f, "403") || !strings.Contains(f, "denied") {
		t.Errorf("failed file:\n%s", f)
	}
}

// SIGINT mid-run: exit 130 with the transfers in flight cancelled, a loadable
// ledger, and a second run that completes everything.
func TestSIGINTStopsCleanly(t *testing.T) {
	t.Parallel()
	b := startBigSync(t, 600)
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := b.cmd.Wait()
	t.Logf("stderr of the interrupted run:\n%s", b.stderr.String())
	if code := b.cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d", code, err, exitInterrupted)
	}
	// The jobs never started are one count in the summary, not a failure
	// line each; the summary says interrupted.
	stderr := b.stderr.String()
	if !regexp.MustCompile(`(?m)^interrupted: \d+ copied, .*, 0 failed, [1-9]\d* not started; `).MatchString(stderr) ||
		strings.Contains(stderr, "interrupted before it started") {
		t.Error("the summary does not count the images not started, or they are listed as failures")
	}
	if !regexp.MustCompile(`(?m)^imagesync: interrupted: stopping the transfers in flight`).MatchString(stderr) {
		t.Error("no Ctrl-C message on a line of its own")
	}
	l, err := ledger.Open(b.ledger)
	if err != nil {
		t.Fatalf("ledger after SIGINT: %v", err)
	}
	if len(l.Warnings()) != 0 {
		t.Errorf("a clean stop left a torn ledger: %v", l.Warnings())
	}
	l.Close()
	b.checkMidRun(t)
	b.finish(t)
}

// One destination of a shared read breaking its uploads does not stop the
// other; the broken one is redone from a fresh read.
func TestFanOutSurvivesOneBrokenDestination(t *testing.T) {
	t.Parallel()
	src, good := pair(t, registrytest.Distribution3, registrytest.Options{})
	bad := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	faults := faultproxy.Start(t, bad.Host, faultproxy.Plan{Seed: 3, RateReset: 0.5,
		Only: func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
		}})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 4, 256<<10, true, 181)
	images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%s/lib/app:1: [%s/a/app, %s/b/app]\n", src.Host, good.Host, faults.Host))
	if r := runCLI(t, nil, "--images", images, "--no-ledger", "--retries", "4"); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	assertDigest(t, good, "a/app", "1", d)
	assertDigest(t, bad, "b/app", "1", d)
	if c := faults.Counts(); c.ResetsRequest+c.ResetsResponse == 0 {
		t.Fatalf("no upload was broken: %+v", c)
	}
	for dg, n := range uploadsPerDigest(good) {
		if n != 1 {
			t.Errorf("the healthy destination got blob %s %d times", dg, n)
		}
	}
}
