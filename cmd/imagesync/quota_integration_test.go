package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/report"
)

// hubQuota is a scripted front that counts pulls as Docker Hub does:
// every manifest answer carries ratelimit-limit and ratelimit-remaining
// ("N;w=21600"), each manifest GET lowers the count (HEADs do not), and a GET
// with nothing left is refused with 429 toomanyrequests.
type hubQuota struct {
	mu         sync.Mutex
	limit      int
	remaining  int
	gets, refd int
	heads      int
}

func (q *hubQuota) set(remaining int) {
	q.mu.Lock()
	q.remaining = remaining
	q.gets, q.refd, q.heads = 0, 0, 0
	q.mu.Unlock()
}

func (q *hubQuota) script(w http.ResponseWriter, r *http.Request, forward http.Handler) {
	if !strings.Contains(r.URL.Path, "/manifests/") {
		forward.ServeHTTP(w, r)
		return
	}
	q.mu.Lock()
	switch r.Method {
	case http.MethodGet:
		if q.remaining == 0 {
			q.refd++
			q.mu.Unlock()
			w.Header().Set("Ratelimit-Limit", fmt.Sprintf("%d;w=21600", q.limit))
			w.Header().Set("Ratelimit-Remaining", "0;w=21600")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`)
			return
		}
		q.remaining--
		q.gets++
	case http.MethodHead:
		q.heads++
	}
	limit, left := q.limit, q.remaining
	q.mu.Unlock()
	c := faultproxy.Capture(forward, r)
	c.Header.Set("Ratelimit-Limit", fmt.Sprintf("%d;w=21600", limit))
	c.Header.Set("Ratelimit-Remaining", fmt.Sprintf("%d;w=21600", left))
	c.Send(w, r)
}

// TestDockerHubPullQuota: plan shows the quota and the pulls a sync needs;
// sync copies what fits above --hub-reserve, then stops starting images
// from that registry, saying when the window resets, exit 1; nothing is
// left half-copied; HEADs do not lower the count.
func TestDockerHubPullQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	q := &hubQuota{limit: 100, remaining: 100}
	front := faultproxy.Scripted(t, src.Host, q.script)
	want := map[string]string{}
	for _, repo := range []string{"lib/a", "lib/b", "lib/c", "lib/d"} {
		want[repo], _ = src.PushRandomImage(t, repo, "1", linuxAmd64, 1, 256, true, int64(len(want))+2800)
	}
	idx, _, children := src.PushIndex(t, "lib/multi", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "s390x"}}, true, 2810)
	want["lib/multi"] = idx
	var rules strings.Builder
	for repo := range want {
		fmt.Fprintf(&rules, "%s/%s:1: %s/%s\n", front.Host, repo, dst.Host, repo)
	}
	images := writeFile(t, t.TempDir(), "images.yaml", rules.String())

	// plan: 4 images (1 pull each) and an index with 3 children (4 pulls).
	r := runCLI(t, nil, "plan", "--images", images, "-o", "json", "--no-ledger")
	if r.code != 0 {
		t.Fatalf("plan: exit %d", r.code)
	}
	var p report.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.PullQuota) != 1 || p.PullQuota[0].Registry != front.Host || p.PullQuota[0].Pulls != 8 || p.PullQuota[0].Limit != 100 ||
		p.PullQuota[0].Remaining != 100-q.gets || p.PullQuota[0].Window != "6h0m0s" || p.PullQuota[0].ResetBy == "" {
		t.Errorf("plan's pull quota %+v (the front counted %d GETs)", p.PullQuota, q.gets)
	}
	if q.heads == 0 || q.gets != 8 {
		t.Errorf("plan: %d manifest GETs, %d HEADs at the front; want 8 GETs and some HEADs", q.gets, q.heads)
	}
	r = runCLI(t, nil, "plan", "--images", images, "--no-ledger")
	if !regexp.MustCompile(`pull quota of ` + regexp.QuoteMeta(front.Host) + `: \d+ of 100 pulls left in its 6h0m0s window, reset by .*; a sync of this plan needs 8 pulls`).MatchString(r.stdout) {
		t.Errorf("the plan table does not show the quota and the pulls needed")
	}

	// sync with 6 pulls left, 1 kept in reserve: 5 pulls for 8 needed.
	q.set(6)
	r = runCLI(t, nil, "--images", images, "--no-ledger", "--hub-reserve", "1", "--retries", "0", "-o", "json")
	if r.code != exitSomeFail {
		t.Errorf("sync: exit %d, want %d", r.code, exitSomeFail)
	}
	if q.refd != 0 || q.gets > 5 {
		t.Errorf("sync sent %d manifest GETs (%d refused) with 5 to spend", q.gets, q.refd)
	}
	copied := 0
	for repo, d := range want {
		if dst.HasManifest(t, repo, "1") {
			assertDigest(t, dst, repo, "1", d)
			copied++
		} else if !strings.Contains(r.stderr, front.Host+"/"+repo+":1") {
			t.Errorf("%s neither copied nor reported", repo)
		}
	}
	if !dst.HasManifest(t, "lib/multi", "1") {
		for _, c := range children {
			if dst.HasManifest(t, "lib/multi", c) {
				t.Errorf("the index was stopped halfway: child %s copied without its index", c)
			}
		}
	}
	if copied == 0 || copied == len(want) {
		t.Errorf("%d of %d images copied: want what fits, not all or nothing", copied, len(want))
	}
	for _, s := range []string{"pull limit of " + front.Host + " reached", "the window resets by ", "1 kept in reserve",
		fmt.Sprintf("pull quota of %s: %d of 100 pulls left in its 6h0m0s window", front.Host, q.remaining)} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("sync's output lacks %q", s)
		}
	}
	var rep report.SyncReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.PullQuota) != 1 || rep.PullQuota[0].Remaining != q.remaining || rep.PullQuota[0].Pulls != int64(q.gets) || rep.PullQuota[0].Reserve != 1 {
		t.Errorf("sync -o json: pull quota %+v; the front: %d left after %d GETs", rep.PullQuota, q.remaining, q.gets)
	}
	if q.heads == 0 || q.remaining != 6-q.gets || q.remaining < 1 {
		t.Errorf("the front has %d left after %d GETs and %d HEADs", q.remaining, q.gets, q.heads)
	}
}
