//go:build bench

// Package bench measures imagesync against peer tools (crane, regsync, skopeo,
// image-syncer) on loopback distribution registries and prints a comparison
// table. Run it with `make bench`; it asserts nothing about time. A peer whose
// binary is in neither <repo>/bin nor PATH is reported as skipped
// (bench/install-peers.sh installs them). BENCH_TRACE=1 logs, per run, which
// requests each tool sent (method and kind: ping, manifests, blobs, uploads).
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
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// Workload shape.
const (
	singleRepos   = 5 // src/app0 … src/app4
	tagsPerRepo   = 4 // v1 … v4: 20 single-platform images
	layersPerImg  = 3 // random gzip layers per single-platform image
	layerSize     = 512 << 10
	parallelism   = 8 // --proc, parallel:, crane worker pool
	fullRuns      = 3 // runs per scenario; the median is reported
	noopRuns      = 3
	movedRuns     = 3
	toolTimeout   = 5 * time.Minute
	srcNS, dstNS  = "src", "dst"
	movedSeedBase = 900_000
)

var platforms = []registrytest.Platform{
	{OS: "linux", Arch: "amd64"},
	{OS: "linux", Arch: "arm64"},
	{OS: "linux", Arch: "arm", Variant: "v7"},
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

// seed pushes the workload into src (directly, not counted) and returns it.
// The same seeds give the same digests in every registry.
func seed(t testing.TB, src *registrytest.Registry) []image {
	var imgs []image
	for r := 0; r < singleRepos; r++ {
		repo := fmt.Sprintf("app%d", r)
		for k := 1; k <= tagsPerRepo; k++ {
			tag := fmt.Sprintf("v%d", k)
			d, _ := src.PushRandomImage(t, srcNS+"/"+repo, tag, platforms[0], layersPerImg, layerSize, r%2 == 1, int64(1000*r+k))
			imgs = append(imgs, image{repo: repo, tag: tag, digest: d})
		}
	}
	// Four indexes: OCI (with annotations, artifactType) and Docker manifest
	// lists (with an unknown field), of 2 and 3 platforms.
	for m, oci := range []bool{true, false} {
		repo := fmt.Sprintf("multi%d", m)
		for k, n := range []int{2, 3} {
			tag := fmt.Sprintf("v%d", k+1)
			d, _, _ := src.PushIndex(t, srcNS+"/"+repo, tag, platforms[:n], oci, int64(50_000+10*m+k))
			imgs = append(imgs, image{repo: repo, tag: tag, digest: d})
		}
	}
	return imgs
}

// env is one tool's registries (the source, and the destination of the
// latest full sync), its work folder and the workload.
type env struct {
	t        *testing.T
	dir      string // work folder (configs, ledger, HOME)
	bin      string // the tool's binary
	src, dst *registrytest.Registry
	imgs     []image
	environ  []string
	logged   map[string]bool // digest differences already logged
}

// tool describes how to drive one program.
type tool struct {
	name  string // label in the table
	bin   string // binary name, looked up in <repo>/bin then PATH
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

// exec runs the tool binary with args, returning an error with the output's
// tail when it fails.
func (e *env) exec(bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 1500 {
			tail = "…" + tail[len(tail)-1500:]
		}
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail)
	}
	return nil
}

var tools = []tool{
	{
		name: "imagesync",
		bin:  "imagesync",
		setup: func(e *env) error {
			var b strings.Builder
			repos, tags := repoTags(e.imgs)
			for _, r := range repos {
				fmt.Fprintf(&b, "%s/%s/%s:%s: %s/%s/%s\n", e.src.Host, srcNS, r, strings.Join(tags[r], ","), e.dst.Host, dstNS, r)
			}
			e.write("images.yaml", b.String())
			return nil
		},
		run: func(e *env, extra ...string) error {
			args := []string{"sync", "--images", filepath.Join(e.dir, "images.yaml"),
				"--ledger", filepath.Join(e.dir, "ledger.jsonl"), "--proc", fmt.Sprint(parallelism)}
			return e.exec(e.bin, append(args, extra...)...)
		},
	},
	{
		name: fmt.Sprintf("crane (%d jobs)", parallelism),
		bin:  "crane",
		run: func(e *env, _ ...string) error {
			// crane has no many-to-many mode: one `crane copy` per image, in a
			// pool of `parallelism` processes.
			jobs := make(chan image)
			errs := make(chan error, len(e.imgs))
			var wg sync.WaitGroup
			for w := 0; w < parallelism; w++ {
				wg.Go(func() {
					for im := range jobs {
						errs <- e.exec(e.bin, "copy", "--insecure",
							fmt.Sprintf("%s/%s/%s:%s", e.src.Host, srcNS, im.repo, im.tag),
							fmt.Sprintf("%s/%s/%s:%s", e.dst.Host, dstNS, im.repo, im.tag))
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
		name: fmt.Sprintf("regsync (parallel %d)", parallelism),
		bin:  "regsync",
		setup: func(e *env) error {
			var b strings.Builder
			fmt.Fprintf(&b, "version: 1\ncreds:\n  - registry: %q\n    tls: disabled\n  - registry: %q\n    tls: disabled\n", e.src.Host, e.dst.Host)
			fmt.Fprintf(&b, "defaults:\n  parallel: %d\n  skipDockerConfig: true\nsync:\n", parallelism)
			for _, im := range e.imgs {
				fmt.Fprintf(&b, "  - source: %s/%s/%s:%s\n    target: %s/%s/%s:%s\n    type: image\n",
					e.src.Host, srcNS, im.repo, im.tag, e.dst.Host, dstNS, im.repo, im.tag)
			}
			e.write("regsync.yaml", b.String())
			return nil
		},
		run: func(e *env, _ ...string) error {
			return e.exec(e.bin, "once", "-c", filepath.Join(e.dir, "regsync.yaml"), "-v", "warn")
		},
	},
	{
		name: "skopeo sync (sequential)",
		bin:  "skopeo",
		setup: func(e *env) error {
			var b strings.Builder
			repos, tags := repoTags(e.imgs)
			fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", e.src.Host)
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
				filepath.Join(e.dir, "skopeo.yaml"), e.dst.Host+"/"+dstNS)
		},
	},
	{
		name: fmt.Sprintf("image-syncer --proc %d", parallelism),
		bin:  "image-syncer",
		setup: func(e *env) error {
			auth := map[string]map[string]bool{e.src.Host: {"insecure": true}, e.dst.Host: {"insecure": true}}
			images := map[string]string{}
			repos, tags := repoTags(e.imgs)
			for _, r := range repos {
				images[fmt.Sprintf("%s/%s/%s:%s", e.src.Host, srcNS, r, strings.Join(tags[r], ","))] =
					fmt.Sprintf("%s/%s/%s", e.dst.Host, dstNS, r)
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

// row is one line of the result table.
type row struct {
	scenario, tool string
	dur            time.Duration
	reqs, src, dst int // requests: total, to the source, to the destination
	srcManGET      int // manifest GETs on the source (what Docker Hub's quota counts)
	dstWrites      int // POST/PUT/PATCH/DELETE on the destination
	digests        string
	note           string // "missing …", "FAIL …"
}

// measure runs fn n times, each after before(i) (not timed), with the request
// logs reset before each run, and returns the median time and median counts.
// With check, the destination's digests are compared after each run.
func measure(e *env, scenario, label string, n int, before func(i int), fn func() error, check bool) row {
	r := row{scenario: scenario, tool: label, digests: "-"}
	var durs []time.Duration
	var reqs, srcs, dsts, gets, writes []int
	for i := 0; i < n; i++ {
		if before != nil {
			before(i)
		}
		e.src.Log.Reset()
		e.dst.Log.Reset()
		start := time.Now()
		err := fn()
		d := time.Since(start)
		if err != nil {
			e.t.Errorf("%s / %s: %v", scenario, label, err)
			r.note = "FAIL (see log)"
		}
		durs = append(durs, d)
		s, t := len(e.src.Log.All()), len(e.dst.Log.All())
		srcs, dsts, reqs = append(srcs, s), append(dsts, t), append(reqs, s+t)
		gets = append(gets, e.src.Log.Count(http.MethodGet, `/manifests/`))
		w := 0
		for _, q := range e.dst.Log.All() {
			if q.Method != http.MethodGet && q.Method != http.MethodHead {
				w++
			}
		}
		writes = append(writes, w)
		if os.Getenv("BENCH_TRACE") != "" {
			e.t.Logf("%s / %s run %d: src: %s; dst: %s", scenario, label, i+1, breakdown(e.src.Log.All()), breakdown(e.dst.Log.All()))
		}
		if check {
			if v := verify(e, label); v != "OK" || r.digests == "-" {
				r.digests = v
			}
		}
	}
	r.dur, r.reqs, r.src, r.dst = median(durs), median(reqs), median(srcs), median(dsts)
	r.srcManGET, r.dstWrites = median(gets), median(writes)
	return r
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

func median[T int | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// verify compares every destination tag with the source digest; it reports
// "OK" or "DIFFER (n)" and logs the differences.
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
			if msg := fmt.Sprintf("%s: %s/%s:%s: want %s, got %s", label, dstNS, im.repo, im.tag, im.digest, got); !e.logged[msg] {
				e.logged[msg] = true
				e.t.Log(msg)
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

// moveTag pushes new content under src/<repo>:<tag> and updates the expected digest.
func moveTag(e *env, repo, tag string, seed int64) {
	d, _ := e.src.PushRandomImage(e.t, srcNS+"/"+repo, tag, platforms[0], layersPerImg, layerSize, false, seed)
	for i := range e.imgs {
		if e.imgs[i].repo == repo && e.imgs[i].tag == tag {
			e.imgs[i].digest = d
		}
	}
}

// lookPath finds a tool binary in <repo>/bin, then PATH.
func lookPath(root, name string) (string, bool) {
	p := filepath.Join(root, "bin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p, true
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
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err == nil {
			if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
				return line
			}
		}
	}
	return "unknown version"
}

func TestBench(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		rows     []row
		versions []string
	)
	add := func(r ...row) {
		mu.Lock()
		defer mu.Unlock()
		rows = append(rows, r...)
	}

	for _, tl := range tools {
		bin, ok := lookPath(root, tl.bin)
		if !ok {
			add(row{scenario: "full sync", tool: tl.name, note: "SKIPPED"})
			versions = append(versions, tl.bin+": not found in bin/ or PATH, skipped (bench/install-peers.sh installs it)")
			continue
		}
		versions = append(versions, fmt.Sprintf("%s: %s (%s)", tl.bin, version(bin), bin))
		t.Run(tl.bin, func(t *testing.T) {
			e := &env{t: t, dir: t.TempDir(), bin: bin, logged: map[string]bool{}}
			e.src = registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
			home := filepath.Join(e.dir, "home")
			if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
				t.Fatal(err)
			}
			// A private HOME and docker config: no credentials or caches of the user.
			e.environ = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
				"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
				"IMAGESYNC_LEDGER=", "NO_COLOR=1")
			start := time.Now()
			e.imgs = seed(t, e.src)
			t.Logf("seeded %d images into %s in %v", len(e.imgs), e.src.Host, time.Since(start).Round(time.Millisecond))
			run := func(extra ...string) func() error { return func() error { return tl.run(e, extra...) } }

			// Full sync: a fresh, empty destination registry (and ledger) for each run.
			freshDst := func(int) {
				e.dst = registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
				if err := os.Remove(filepath.Join(e.dir, "ledger.jsonl")); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if tl.setup != nil {
					if err := tl.setup(e); err != nil {
						t.Fatal(err)
					}
				}
			}
			add(measure(e, "full sync", tl.name, fullRuns, freshDst, run(), true))
			// Each "moved" run moves another tag of the repository to new content.
			move := func(repo string, seed int64) func(int) {
				return func(i int) { moveTag(e, repo, fmt.Sprintf("v%d", i+1), seed+int64(i)) }
			}
			if tl.bin == "imagesync" {
				add(measure(e, "no-op re-run", tl.name, noopRuns, nil, run(), false),
					measure(e, "no-op re-run", tl.name+" --trust-ledger", noopRuns, nil, run("--trust-ledger"), false),
					measure(e, "no-op re-run", tl.name+" --no-ledger", noopRuns, nil, run("--no-ledger"), false),
					measure(e, "one tag moved", tl.name, movedRuns, move("app0", movedSeedBase), run(), true),
					measure(e, "one tag moved", tl.name+" --no-ledger", movedRuns, move("app1", movedSeedBase+100), run("--no-ledger"), true))
				return
			}
			add(measure(e, "no-op re-run", tl.name, noopRuns, nil, run(), false),
				measure(e, "one tag moved", tl.name, movedRuns, move("app0", movedSeedBase), run(), true))
		})
	}
	printTable(os.Stdout, rows, versions)
}

var scenarios = []string{"full sync", "no-op re-run", "one tag moved"}

func printTable(w io.Writer, rows []row, versions []string) {
	base := map[string]row{}
	for _, r := range rows {
		if r.tool == "imagesync" && r.note == "" {
			base[r.scenario] = r
		}
	}
	ratio := func(v, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v/b)
	}
	fmt.Fprintf(w, "\nimagesync vs peers: %d single-platform images (%d layers × %d KiB) in %d repositories + 4 indexes (2–3 platforms)\n",
		singleRepos*tagsPerRepo, layersPerImg, layerSize>>10, singleRepos)
	fmt.Fprintf(w, "on loopback distribution-3 registries; each tool has its own source, and a fresh empty destination per full sync.\n")
	fmt.Fprintf(w, "Median of %d runs per scenario. ×imagesync = peer ÷ imagesync (ledger). src manifest GETs = what Docker Hub's\n", noopRuns)
	fmt.Fprintf(w, "pull quota counts; dst writes = POST/PUT/PATCH/DELETE on the destination. \"one tag moved\": a source tag now\n")
	fmt.Fprintf(w, "points at a new image, then a re-run. crane: one `crane copy` process per image, %d at a time.\n\n", parallelism)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\ttool\ttime\t×imagesync\trequests\t×imagesync\tsrc/dst\tsrc manifest GETs\tdst writes\tdigests")
	for _, sc := range scenarios {
		b := base[sc]
		for _, r := range rows {
			if r.scenario != sc {
				continue
			}
			if strings.HasPrefix(r.note, "SKIPPED") {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\tskipped: not installed\n", r.scenario, r.tool)
				continue
			}
			dig := r.digests
			if r.note != "" {
				dig = r.note
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3fs\t%s\t%d\t%s\t%d/%d\t%d\t%d\t%s\n", r.scenario, r.tool, r.dur.Seconds(),
				ratio(r.dur.Seconds(), b.dur.Seconds()), r.reqs, ratio(float64(r.reqs), float64(b.reqs)),
				r.src, r.dst, r.srcManGET, r.dstWrites, dig)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nversions:")
	for _, v := range versions {
		fmt.Fprintln(w, "  "+v)
	}
}
