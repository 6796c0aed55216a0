//go:build bench

// Package bench measures imagesync against peer tools (crane, regsync, skopeo,
// image-syncer) and against the protocol floor (bench/floor: the fewest
// requests a copy can make) on loopback distribution registries, on the
// workloads of issue #12, behind a rate limiter, and with a ledger of a
// million images. Run it with `make bench`: it prints the tables and
// rewrites the generated part of docs/benchmarks.md and docs/benchmarks.svg.
// It asserts nothing about time.
//
// Every workload has one source registry; every run gets a fresh, empty
// destination. Rounds are interleaved (each tool once per round, in turn),
// and each row is the median of the rounds. A peer whose binary is in
// neither <repo>/bin nor PATH is reported as skipped (bench/install-peers.sh
// installs them). bin/imagesync-base, when present, runs as a second
// imagesync ("before" numbers of a change).
//
// Environment: BENCH_ONLY=W1,W2,W3,limit,ledger runs a subset (and then
// leaves docs/ alone unless BENCH_WRITE_DOCS=1); BENCH_TOOLS=imagesync,floor,…
// runs some tools only (by binary name); BENCH_ROUNDS (default 3);
// BENCH_REGISTRY=3 for distribution v3 instead of Debian's 2.8;
// BENCH_LEDGER_MANIFESTS (default 1000000); BENCH_TRACE=1 logs every run's
// requests by method and kind.
package bench

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

const (
	parallelism  = 8 // --proc, parallel:, crane's worker pool, the floor's -j
	toolTimeout  = 10 * time.Minute
	srcNS, dstNS = "src", "dst"
)

func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

func registryKind() registrytest.Kind {
	if os.Getenv("BENCH_REGISTRY") == "3" {
		return registrytest.Distribution3
	}
	return registrytest.Distribution2
}

// selected reports whether BENCH_ONLY (if set) names part.
func selected(part string) bool {
	only := os.Getenv("BENCH_ONLY")
	return only == "" || slices.Contains(strings.Split(only, ","), part)
}

// image is one seeded source tag and the digest the destination must hold.
type image struct {
	repo, tag string // repo without namespace: "app0"
	digest    string
}

// repoTags groups the images by repository, in seeding order.
func repoTags(imgs []image) (repos []string, tags map[string][]string) {
	tags = map[string][]string{}
	for _, im := range imgs {
		if _, ok := tags[im.repo]; !ok {
			repos = append(repos, im.repo)
		}
		tags[im.repo] = append(tags[im.repo], im.tag)
	}
	return repos, tags
}

// env is one run's registries, work folder and workload.
type env struct {
	t       *testing.T
	dir     string // work folder (configs, ledger, HOME)
	bin     string // the tool's binary
	src     *registrytest.Registry
	dst     *registrytest.Registry
	srcHost string // where the tool reads: src.Host, or a far proxy in front of it
	dstHost string // where the tool writes: dst.Host, or a proxy in front of it
	net     netCond
	far     [2]*faultproxy.Proxy // the far proxies in front of src and dst (nil on loopback)
	imgs    []image
	environ []string
	rss     atomic.Int64 // peak RSS of the tool's processes in this run, bytes
	cpu     atomic.Int64 // CPU time (user + system) of the tool's processes in this run, ns
	anon    atomic.Int64 // peak of its anonymous part (heap, stacks): RSS less the binary's mapped pages
	peer    bool         // a peer tool: its failures are reported in the table, not as test failures
}

// tool describes how to drive one program.
type tool struct {
	name  string // label in the table
	bin   string // binary name, looked up in <repo>/bin then PATH
	heavy bool   // also runs on the heavy workload (W3)
	noop  bool   // has a meaningful no-op re-run
	setup func(e *env) error
	run   func(e *env, args ...string) error // args: extra flags (imagesync only)
}

func (e *env) write(name, content string) string {
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// exec runs bin with args, records its peak RSS, and returns an error with
// the output's tail when it fails.
func (e *env) exec(bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	rss, anon, err := runWatched(cmd)
	if cmd.ProcessState != nil {
		e.cpu.Add(int64(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()))
	}
	for _, p := range []struct {
		v   *atomic.Int64
		new int64
	}{{&e.rss, rss}, {&e.anon, anon}} {
		for {
			old := p.v.Load()
			if p.new <= old || p.v.CompareAndSwap(old, p.new) {
				break
			}
		}
	}
	if err != nil {
		tail := out.String()
		if len(tail) > 1500 {
			tail = "…" + tail[len(tail)-1500:]
		}
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail)
	}
	return nil
}

func imagesyncTool(name, bin string) tool {
	return tool{
		name: name, bin: bin, heavy: true, noop: true,
		setup: func(e *env) error {
			var b strings.Builder
			repos, tags := repoTags(e.imgs)
			for _, r := range repos {
				fmt.Fprintf(&b, "%s/%s/%s:%s: %s/%s/%s\n", e.srcHost, srcNS, r, strings.Join(tags[r], ","), e.dstHost, dstNS, r)
			}
			e.write("images.yaml", b.String())
			return nil
		},
		run: func(e *env, extra ...string) error {
			args := []string{"sync", "--images", filepath.Join(e.dir, "images.yaml"),
				"--ledger", filepath.Join(e.dir, "ledger.db")}
			if !learnsTransfers(e.bin) {
				// A build without learned transfers gets the others' 8.
				args = append(args, "--proc", fmt.Sprint(parallelism))
			}
			return e.exec(e.bin, append(args, extra...)...)
		},
	}
}

var tools = []tool{
	imagesyncTool("imagesync", "imagesync"),
	imagesyncTool("imagesync (base)", "imagesync-base"),
	{
		name: "floor", bin: "floor", heavy: true,
		setup: func(e *env) error {
			type img struct{ Repo, Dst, Tag string }
			p := struct {
				Src, Dst string
				Images   []img
			}{Src: e.srcHost, Dst: e.dstHost}
			for _, im := range e.imgs {
				p.Images = append(p.Images, img{srcNS + "/" + im.repo, dstNS + "/" + im.repo, im.tag})
			}
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			e.write("floor.json", string(b))
			return nil
		},
		run: func(e *env, _ ...string) error {
			return e.exec(e.bin, "-plan", filepath.Join(e.dir, "floor.json"), "-j", fmt.Sprint(parallelism))
		},
	},
	{
		name: fmt.Sprintf("regsync (parallel %d)", parallelism), bin: "regsync", heavy: true, noop: true,
		setup: func(e *env) error {
			var b strings.Builder
			fmt.Fprintf(&b, "version: 1\ncreds:\n  - registry: %q\n    tls: disabled\n  - registry: %q\n    tls: disabled\n", e.srcHost, e.dstHost)
			fmt.Fprintf(&b, "defaults:\n  parallel: %d\n  skipDockerConfig: true\nsync:\n", parallelism)
			for _, im := range e.imgs {
				fmt.Fprintf(&b, "  - source: %s/%s/%s:%s\n    target: %s/%s/%s:%s\n    type: image\n",
					e.srcHost, srcNS, im.repo, im.tag, e.dstHost, dstNS, im.repo, im.tag)
			}
			e.write("regsync.yaml", b.String())
			return nil
		},
		run: func(e *env, _ ...string) error {
			return e.exec(e.bin, "once", "-c", filepath.Join(e.dir, "regsync.yaml"), "-v", "warn")
		},
	},
	{
		name: fmt.Sprintf("crane (%d jobs)", parallelism), bin: "crane", noop: true,
		run: func(e *env, _ ...string) error {
			// crane has no many-to-many mode: one `crane copy` per image, in a
			// pool of `parallelism` processes.
			jobs := make(chan image)
			errs := make(chan error, len(e.imgs))
			var wg sync.WaitGroup
			for range parallelism {
				wg.Go(func() {
					for im := range jobs {
						errs <- e.exec(e.bin, "copy", "--insecure",
							fmt.Sprintf("%s/%s/%s:%s", e.srcHost, srcNS, im.repo, im.tag),
							fmt.Sprintf("%s/%s/%s:%s", e.dstHost, dstNS, im.repo, im.tag))
					}
				})
			}
			for _, im := range e.imgs {
				jobs <- im
			}
			close(jobs)
			wg.Wait()
			close(errs)
			var all []error
			for err := range errs {
				if err != nil {
					all = append(all, err)
				}
			}
			if len(all) > 0 {
				return fmt.Errorf("%d of %d copies failed; first: %w", len(all), len(e.imgs), all[0])
			}
			return nil
		},
	},
	{
		name: "skopeo sync (sequential)", bin: "skopeo", noop: true,
		setup: func(e *env) error {
			var b strings.Builder
			repos, tags := repoTags(e.imgs)
			fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", e.srcHost)
			for _, r := range repos {
				fmt.Fprintf(&b, "    %s/%s: [%s]\n", srcNS, r, strings.Join(tags[r], ", "))
			}
			e.write("skopeo.yaml", b.String())
			e.write("policy.json", `{"default":[{"type":"insecureAcceptAnything"}]}`+"\n")
			return nil
		},
		run: func(e *env, _ ...string) error {
			return e.exec(e.bin, "--policy", filepath.Join(e.dir, "policy.json"),
				"sync", "--src", "yaml", "--dest", "docker",
				"--src-tls-verify=false", "--dest-tls-verify=false", "--all",
				filepath.Join(e.dir, "skopeo.yaml"), e.dstHost+"/"+dstNS)
		},
	},
	{
		name: fmt.Sprintf("image-syncer --proc %d", parallelism), bin: "image-syncer", noop: true,
		setup: func(e *env) error {
			auth := map[string]map[string]bool{e.srcHost: {"insecure": true}, e.dstHost: {"insecure": true}}
			images := map[string]string{}
			repos, tags := repoTags(e.imgs)
			for _, r := range repos {
				images[fmt.Sprintf("%s/%s/%s:%s", e.srcHost, srcNS, r, strings.Join(tags[r], ","))] =
					fmt.Sprintf("%s/%s/%s", e.dstHost, dstNS, r)
			}
			for name, v := range map[string]any{"auth.json": auth, "images.json": images} {
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				e.write(name, string(b))
			}
			return nil
		},
		run: func(e *env, _ ...string) error {
			return e.exec(e.bin, "--auth", filepath.Join(e.dir, "auth.json"),
				"--images", filepath.Join(e.dir, "images.json"), "--proc", fmt.Sprint(parallelism))
		},
	},
}

// sample is one measured run.
type sample struct {
	dur            time.Duration
	reqs, src, dst int // requests: total, to the source, to the destination
	srcManGET      int // manifest GETs on the source (what Docker Hub's quota counts)
	srcBlobGET     int // blob GETs on the source
	dstBlobReqs    int // destination requests on /blobs/ (HEAD, POST, PATCH, PUT) but successful mounts
	mounts         int // POSTs with mount= answered 201
	uploads        int // blobs uploaded (PUTs of an upload answered 201)
	dstWrites      int // POST/PUT/PATCH/DELETE on the destination
	rss            int64
	anon           int64 // peak RssAnon
	cpu            time.Duration
	digests        string // "OK", "DIFFER (n)", "-"
	failed         bool
}

// noopRepeats is how many times a no-op runs per round: a no-op takes a
// tenth of a second, where one sample is mostly the machine's noise.
const noopRepeats = 5

// repeated runs a measurement noopRepeats times and keeps the median one.
func repeated(m func() sample) sample {
	var all []sample
	for range noopRepeats {
		all = append(all, m())
	}
	slices.SortFunc(all, func(a, b sample) int { return int(a.dur - b.dur) })
	return all[len(all)/2]
}

// measure runs fn once with the request logs reset, and with check compares
// the destination's digests after it.
func measure(e *env, label string, fn func() error, check bool) sample {
	e.src.Log.Reset()
	e.dst.Log.Reset()
	e.rss.Store(0)
	e.anon.Store(0)
	e.cpu.Store(0)
	start := time.Now()
	err := fn()
	s := sample{dur: time.Since(start), digests: "-", rss: e.rss.Load(), anon: e.anon.Load(), cpu: time.Duration(e.cpu.Load())}
	if err != nil {
		if e.peer {
			e.t.Logf("%s: %v", label, err)
		} else {
			e.t.Errorf("%s: %v", label, err)
		}
		s.failed = true
	}
	srcReqs, dstReqs := e.src.Log.All(), e.dst.Log.All()
	s.src, s.dst = len(srcReqs), len(dstReqs)
	s.reqs = s.src + s.dst
	for _, q := range srcReqs {
		if q.Method == http.MethodGet && strings.Contains(q.Path, "/manifests/") {
			s.srcManGET++
		}
		if q.Method == http.MethodGet && strings.Contains(q.Path, "/blobs/") && !strings.Contains(q.Path, "/blobs/uploads") {
			s.srcBlobGET++
		}
	}
	for _, q := range dstReqs {
		if q.Method != http.MethodGet && q.Method != http.MethodHead {
			s.dstWrites++
		}
		if strings.Contains(q.Path, "/blobs/") {
			if q.Method == http.MethodPost && strings.Contains(q.RawQuery, "mount=") && q.Status == http.StatusCreated {
				s.mounts++
				continue
			}
			s.dstBlobReqs++
			if q.Method == http.MethodPut && strings.Contains(q.Path, "/blobs/uploads/") && q.Status == http.StatusCreated {
				s.uploads++
			}
		}
	}
	if os.Getenv("BENCH_TRACE") != "" {
		e.t.Logf("%s: src: %s; dst: %s", label, breakdown(srcReqs), breakdown(dstReqs))
	}
	if check {
		s.digests = verify(e, label)
	}
	return s
}

// breakdown summarises requests as "GET manifests 24, HEAD blobs 3, …".
func breakdown(reqs []registrytest.Request) string {
	counts := map[string]int{}
	var keys []string
	for _, q := range reqs {
		kind := "ping"
		for _, k := range []string{"/manifests/", "/blobs/uploads/", "/blobs/", "/tags/list"} {
			if strings.Contains(q.Path, k) {
				kind = strings.Trim(k, "/")
				break
			}
		}
		key := q.Method + " " + kind
		if counts[key] == 0 {
			keys = append(keys, key)
		}
		counts[key]++
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// verify compares every destination tag with the source digest; it reports
// "OK" or "DIFFER (n)" and logs the first differences.
func verify(e *env, label string) string {
	client := e.dst.Client()
	defer client.CloseIdleConnections()
	bad := 0
	for _, im := range e.imgs {
		got, err := manifestDigest(client, e.dst, dstNS+"/"+im.repo, im.tag)
		if err != nil || got != im.digest {
			bad++
			if err != nil {
				got = err.Error()
			}
			if bad <= 3 {
				e.t.Logf("%s: %s/%s:%s: want %s, got %s", label, dstNS, im.repo, im.tag, im.digest, got)
			}
		}
	}
	if bad > 0 {
		return fmt.Sprintf("DIFFER (%d)", bad)
	}
	return "OK"
}

// manifestDigest GETs repo:tag from the server directly (not counted) and
// returns the sha256 of the bytes it serves.
func manifestDigest(c *http.Client, r *registrytest.Registry, repo, tag string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, r.Scheme()+"://"+r.Direct+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", registrytest.AcceptManifests)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return registrytest.Digest(body), nil
}

// lookPath finds a tool binary in <repo>/bin, then PATH.
func lookPath(root, name string) (string, bool) {
	p := filepath.Join(root, "bin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p, true
	}
	if name == "imagesync-base" {
		return "", false // never from PATH
	}
	p, err := exec.LookPath(name)
	return p, err == nil
}

// version tells which build of a tool runs: the Go module version embedded in
// the binary, else the tool's own version output.
func version(bin string) string {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return bi.Main.Path + " " + v
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err == nil {
			if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
				return line
			}
		}
	}
	return "unknown version"
}

// newEnv makes a run's work folder and private environment, with a fresh
// destination registry.
func newEnv(t *testing.T, bin string, src *registrytest.Registry, imgs []image, n netCond) *env {
	e := &env{t: t, dir: t.TempDir(), bin: bin, src: src, imgs: imgs, net: n}
	home := filepath.Join(e.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A private HOME and docker config: no credentials or caches of the user.
	e.environ = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"IMAGESYNC_LEDGER=", "NO_COLOR=1")
	e.dst = registrytest.Start(t, registryKind(), registrytest.Options{})
	e.srcHost, e.dstHost = src.Host, e.dst.Host
	if n.far() {
		// Each run its own far proxies: its connections start cold, as a
		// new process's do.
		plan := faultproxy.Plan{RTT: n.rtt, Bandwidth: n.bandwidth}
		e.far[0], e.far[1] = faultproxy.Start(t, src.Host, plan), faultproxy.Start(t, e.dst.Host, plan)
		e.srcHost, e.dstHost = e.far[0].Host, e.far[1].Host
	}
	return e
}

// runWatched runs cmd and returns its peak RSS: the high-water mark of its
// own memory (VmHWM in /proc/PID/status), read every few milliseconds while
// it runs, and the largest anonymous part seen (RssAnon: the heap and
// stacks, without the pages of the binary itself, which grow with its size
// rather than its work). (getrusage's ru_maxrss of a child starts from the
// RSS of the process that forked it, here this test's.)
func runWatched(cmd *exec.Cmd) (int64, int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var peak, anon atomic.Int64
	raise := func(v *atomic.Int64, line, prefix string) {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			if kb*1024 > v.Load() {
				v.Store(kb * 1024)
			}
		}
	}
	done := make(chan struct{})
	go func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		t := time.NewTicker(3 * time.Millisecond)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(status); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					raise(&peak, line, "VmHWM:")
					raise(&anon, line, "RssAnon:")
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return peak.Load(), anon.Load(), err
}

// learnsTransfers reports whether bin learns its blob transfers when
// --proc is not given (it starts at 8, as the others run, and may go on
// to more: that is the point of it).
func learnsTransfers(bin string) bool { return hasFlag(bin, "learns how many") }

// hasFlag reports whether `bin sync --help` mentions flag. The help is
// read once per binary: a run asks before each measured sync, and a second
// process started inside the measurement would add its ~15 ms to the tool's
// time (it did, to every imagesync no-op, until this was kept).
func hasFlag(bin, flag string) bool {
	helpMu.Lock()
	defer helpMu.Unlock()
	out, ok := helpOf[bin]
	if !ok {
		out, _ = exec.Command(bin, "sync", "--help").CombinedOutput()
		helpOf[bin] = out
	}
	return bytes.Contains(out, []byte(flag))
}

var (
	helpMu sync.Mutex
	helpOf = map[string][]byte{}
)

func TestBench(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	rep := newReport(registryKind())
	// The floor client, built for this run.
	floorDir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(floorDir, "floor"), "./floor").CombinedOutput(); err != nil {
		t.Fatalf("building the floor client: %v\n%s", err, out)
	}
	var avail []tool
	for _, tl := range tools {
		if only := os.Getenv("BENCH_TOOLS"); only != "" && !slices.Contains(strings.Split(only, ","), tl.bin) {
			continue
		}
		bin, ok := lookPath(root, tl.bin)
		if tl.bin == "floor" {
			bin, ok = filepath.Join(floorDir, "floor"), true
		}
		if !ok {
			if tl.bin != "imagesync-base" {
				rep.versions = append(rep.versions, tl.bin+": not found in bin/ or PATH, skipped (bench/install-peers.sh installs it)")
			}
			continue
		}
		v := version(bin)
		if tl.bin == "floor" {
			v = "bench/floor"
		}
		rep.versions = append(rep.versions, fmt.Sprintf("%s: %s", tl.name, v))
		tl.bin = bin
		avail = append(avail, tl)
	}
	if len(avail) == 0 || !strings.HasSuffix(avail[0].bin, "imagesync") {
		t.Fatal("bin/imagesync not found: run `make build` first")
	}
	sources := map[string]*registrytest.Registry{}
	imgsOf := map[string][]image{}
	for _, w := range workloads {
		if !selected(w.name) && !(w.name == "W1" && selected("limit")) && !(w.wan && (selected("wan") || selected("trace"))) {
			continue
		}
		src := registrytest.Start(t, registryKind(), registrytest.Options{})
		start := time.Now()
		imgs := w.seed(t, src)
		t.Logf("%s: seeded %d images into %s in %v", w.name, len(imgs), src.Host, time.Since(start).Round(time.Millisecond))
		sources[w.name], imgsOf[w.name] = src, imgs
	}
	for _, w := range workloads {
		nets := []netCond{}
		if selected(w.name) {
			nets = append(nets, netCond{})
		}
		if w.wan && selected("wan") {
			nets = append(nets, wanConds(t, w)...)
		}
		if len(nets) == 0 {
			continue
		}
		rep.workloads = append(rep.workloads, w)
		for _, n := range nets {
			for round := range rounds() {
				for _, tl := range avail {
					if w.heavy && !tl.heavy {
						continue
					}
					t.Run(fmt.Sprintf("%s%s/round%d/%s", w.name, n.id(), round+1, filepath.Base(tl.bin)), func(t *testing.T) {
						e := newEnv(t, tl.bin, sources[w.name], imgsOf[w.name], n)
						e.peer = !strings.HasPrefix(tl.name, "imagesync") && tl.name != "floor"
						if tl.setup != nil {
							if err := tl.setup(e); err != nil {
								t.Fatal(err)
							}
						}
						run := func(extra ...string) func() error { return func() error { return tl.run(e, extra...) } }
						full, noop := w.name+" full"+n.label(), w.name+" no-op"+n.label()
						rep.add(full, tl.name, measure(e, full+" / "+tl.name, run(), true))
						if !w.noop || !tl.noop {
							return
						}
						rep.add(noop, tl.name, repeated(func() sample { return measure(e, noop+" / "+tl.name, run(), false) }))
						if strings.HasPrefix(tl.name, "imagesync") && hasFlag(tl.bin, "--trust-ledger") {
							rep.add(noop, tl.name+" --trust-ledger", repeated(func() sample { return measure(e, noop+" trusting / "+tl.name, run("--trust-ledger"), false) }))
						}
					})
				}
			}
		}
	}
	if selected("trace") {
		runTrace(t, rep, avail, sources["W1"], imgsOf["W1"])
	}
	if selected("limit") {
		runLimit(t, rep, avail, sources["W1"], imgsOf["W1"])
	}
	if selected("ledger") {
		runLedgerScale(t, rep, avail[0].bin)
	}
	rep.print(os.Stdout)
	if os.Getenv("BENCH_ONLY") == "" || os.Getenv("BENCH_WRITE_DOCS") == "1" {
		if err := rep.writeDocs(root); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/benchmarks.md and docs/benchmarks.svg")
	}
}
