package main

// The test helpers that more than one test file of cmd/imagesync uses, in
// one place (a helper only one file uses stays beside its tests).
//
// Tests that start registries, servers or processes call t.Parallel() first
// (go test runs GOMAXPROCS of them at once); each has its own registries,
// ledger (testLedger) and HOME. A test that must stay serial says why in
// its first line ("// Serial: …"): t.Setenv, a port freed and taken again,
// or a time bound a test beside it would eat.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// --- Running imagesync (in-process, as a binary, under other names) ---

// TestMain lets the test binary act as imagesync itself, for the tests that
// need a separate process (to kill it).
func TestMain(m *testing.M) {
	if os.Getenv("IMAGESYNC_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	// Every run gets its own HOME (so its own default ledger and docker
	// config): none may share the user's, nor each other's when tests run in
	// parallel, through a variable inherited from the environment.
	for _, k := range []string{"XDG_CACHE_HOME", "IMAGESYNC_LEDGER", "DOCKER_CONFIG"} {
		os.Unsetenv(k)
	}
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs imagesync in-process with its own environment.
func runCLI(t *testing.T, envVars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) {
		if v, ok := envVars[k]; ok {
			return v, ok
		}
		switch k {
		case "IMAGESYNC_LEDGER": // never the user's ledger: one per test
			return testLedger(t), true
		case "HOME": // never the user's ~/.docker
			return filepath.Dir(testLedger(t)), true
		}
		return "", false
	}
	code := run(context.Background(), append([]string{"imagesync"}, args...), env{lookup: lookup}, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("imagesync %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, r.stdout, r.stderr)
	return r
}

var (
	ledgersMu sync.Mutex
	ledgers   = map[*testing.T]string{}
)

// testLedger is the ledger every run of one test shares.
func testLedger(t *testing.T) string {
	ledgersMu.Lock()
	defer ledgersMu.Unlock()
	if p, ok := ledgers[t]; ok {
		return p
	}
	p := filepath.Join(t.TempDir(), "ledger.jsonl")
	ledgers[t] = p
	t.Cleanup(func() { ledgersMu.Lock(); delete(ledgers, t); ledgersMu.Unlock() })
	return p
}

// runAs runs the CLI in-process under another name (kubectl-imagesync).
func runAs(t *testing.T, argv0 string, envVars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	home := filepath.Dir(testLedger(t))
	lookup := func(k string) (string, bool) {
		if v, ok := envVars[k]; ok {
			return v, ok
		}
		switch k {
		case "IMAGESYNC_LEDGER":
			return testLedger(t), true
		case "HOME":
			return home, true
		}
		return "", false
	}
	code := run(context.Background(), append([]string{argv0}, args...), env{lookup: lookup}, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("%s %s → exit %d\nstdout:\n%s\nstderr:\n%s", argv0, strings.Join(args, " "), code, r.stdout, r.stderr)
	return r
}

// installAs copies this test binary (which acts as imagesync when
// IMAGESYNC_TEST_AS_MAIN=1) to dir/name.
func installAs(t *testing.T, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	p := filepath.Join(dir, name)
	out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, self); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func completions(t *testing.T, argv0 string, words ...string) []string {
	t.Helper()
	r := runCLI(t, nil, append([]string{"__complete"}, words...)...)
	if argv0 != "imagesync" {
		var out, errb strings.Builder
		code := run(t.Context(), append([]string{argv0, "__complete"}, words...), env{lookup: func(string) (string, bool) { return "", false }}, &out, &errb)
		r = result{code: code, stdout: out.String()}
	}
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	out := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for i, c := range out {
		out[i], _, _ = strings.Cut(c, "\t") // the candidate, not its description
	}
	return out
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// --- Files ---

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerConfig writes DIR/config.json and returns DIR.
func dockerConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "config.json", content)
	return dir
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(filepath.Join("..", "..", "imagesync.schema.json"))
	if err != nil {
		t.Fatalf("the JSON Schema does not compile: %v", err)
	}
	return s
}

func validateYAML(s *jsonschema.Schema, doc []byte) error {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// ledgerEntry reads one destination entry of a closed ledger.
func ledgerEntry(t *testing.T, path, dst string) ledger.Entry {
	t.Helper()
	l, err := ledger.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, ok := l.Manifest(dst)
	if !ok {
		t.Fatalf("%s is not in the ledger", dst)
	}
	return e
}

// --- Registries and what they hold ---

var linuxAmd64 = registrytest.Platform{OS: "linux", Arch: "amd64"}

// pair starts a source and a destination registry of the same kind.
func pair(t *testing.T, kind registrytest.Kind, dstOpt registrytest.Options) (src, dst *registrytest.Registry) {
	t.Helper()
	return registrytest.Start(t, kind, registrytest.Options{}), registrytest.Start(t, kind, dstOpt)
}

func forEachKind(t *testing.T, f func(t *testing.T, kind registrytest.Kind)) {
	for _, k := range registrytest.Kinds() {
		t.Run(string(k), func(t *testing.T) { f(t, k) })
	}
}

func assertDigest(t *testing.T, r *registrytest.Registry, repo, ref, want string) []byte {
	t.Helper()
	raw, _, got := r.Manifest(t, repo, ref)
	if got != want || registrytest.Digest(raw) != want {
		t.Errorf("%s:%s has digest %s (bytes %s), want %s", repo, ref, got, registrytest.Digest(raw), want)
	}
	return raw
}

// uploadsPerDigest counts blob upload PUTs per digest in a registry's log.
func uploadsPerDigest(r *registrytest.Registry) map[string]int {
	out := map[string]int{}
	re := regexp.MustCompile(`digest=(sha256(%3A|:)[0-9a-f]{64})`)
	for _, q := range r.Log.All() {
		if q.Method == "PUT" && strings.Contains(q.Path, "/blobs/uploads/") {
			if m := re.FindStringSubmatch(q.RawQuery); m != nil {
				out[strings.Replace(m[1], "%3A", ":", 1)]++
			}
		}
	}
	return out
}

// blobBytes sums the config and layer sizes of an image manifest.
func blobBytes(t *testing.T, raw []byte) int64 {
	var m struct {
		Config struct{ Size int64 }
		Layers []struct{ Size int64 }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// noPathTricks fails when any request that reached r carried a dot-segment,
// a "victim" or an escaped path: nothing from a registry became a path.
func noPathTricks(t *testing.T, r *registrytest.Registry) {
	t.Helper()
	for _, q := range r.Log.All() {
		if strings.Contains(q.Path, "..") || strings.Contains(q.Path, "victim") || strings.Contains(q.Path, "pwned") || strings.Contains(q.RawQuery, "x=y") {
			t.Errorf("a registry answer became part of a request: %s", q)
		}
	}
	if tags := r.Tags(t, "victim"); len(tags) > 0 {
		t.Errorf("the repository no rule names got tags %v", tags)
	}
}

func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// slowWriter writes a response at the limiter's rate, 16 KiB at a time.
type slowWriter struct {
	http.ResponseWriter
	ctx context.Context
	lim *rate.Limiter
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 16<<10)
		if err := s.lim.WaitN(s.ctx, c); err != nil {
			return n, err
		}
		m, err := s.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[c:]
	}
	return n, nil
}

// throttled puts a reverse proxy in front of host that sends blob bodies at
// bytesPerSec in all (a slow source), so a run lasts long enough to watch.
func throttled(t *testing.T, host string, bytesPerSec int) string {
	t.Helper()
	target, _ := url.Parse("http://" + host)
	rp := httputil.NewSingleHostReverseProxy(target)
	lim := rate.NewLimiter(rate.Limit(bytesPerSec), 32<<10)
	return httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &slowWriter{ResponseWriter: w, ctx: r.Context(), lim: lim}
		}
		rp.ServeHTTP(w, r)
	}))
}

// --- Reports (-o json of sync, plan, verify) ---

type syncReport struct {
	Jobs []struct {
		Source, Destination, Action, Digest, Error string
		Retries                                    int
	}
	Summary map[string]float64
}

func parseSyncReport(t *testing.T, r result) syncReport {
	t.Helper()
	var rep syncReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, r.stdout)
	}
	return rep
}

// syncJSON runs a sync with -o json and returns its report.
func syncJSON(t *testing.T, args ...string) (report.SyncReport, result) {
	t.Helper()
	r := runCLI(t, nil, append([]string{"sync", "-o", "json"}, args...)...)
	var rep report.SyncReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("sync -o json is not JSON: %v\n%s", err, r.stdout)
	}
	return rep, r
}

type planDoc struct {
	Jobs []struct {
		Source, Destination, Action, Digest, Reason string
		Bytes                                       int64
	}
	Summary map[string]int64
}

func planJSON(t *testing.T, args ...string) (planDoc, result) {
	t.Helper()
	r := runCLI(t, nil, append([]string{"plan", "-o", "json"}, args...)...)
	var p planDoc
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan -o json is not JSON: %v", err)
	}
	return p, r
}

func planJobs(t *testing.T, r result) []report.PlanJob {
	t.Helper()
	var p report.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan -o json: %v", err)
	}
	return p.Jobs
}

func verifyJSON(t *testing.T, args ...string) (map[string][]string, result) {
	t.Helper()
	r := runCLI(t, nil, append([]string{"verify", "-o", "json"}, args...)...)
	var v struct {
		Jobs []struct {
			Destination string
			OK          bool
			Problems    []struct{ Kind, Ref string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("verify -o json is not JSON: %v\n%s", err, r.stdout)
	}
	out := map[string][]string{}
	for _, j := range v.Jobs {
		for _, p := range j.Problems {
			out[j.Destination] = append(out[j.Destination], p.Kind)
		}
	}
	return out, r
}

type filterPlan struct {
	Jobs []struct {
		Source, Destination, Action, Digest string
		Rewrite                             bool
		SourceDigest                        string `json:"sourceDigest"`
		Subject                             string
		ArtifactType                        string `json:"artifactType"`
	}
	Filters []struct {
		Rule, Source string
		Steps        []struct {
			Filter  string
			Removed []string
		}
	}
}

func (p filterPlan) sourceTags() []string {
	var out []string
	for _, j := range p.Jobs {
		if j.Subject == "" {
			out = append(out, j.Source[strings.LastIndex(j.Source, ":")+1:])
		}
	}
	sort.Strings(out)
	return out
}

// planJSON runs plan -o json and decodes it.
func filterPlanJSON(t *testing.T, args ...string) filterPlan {
	t.Helper()
	r := runCLI(t, nil, append([]string{"plan", "-o", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("plan exit %d", r.code)
	}
	var p filterPlan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan output: %v", err)
	}
	return p
}

// wantRows: per layout (or registry), the two images, the image's cosign
// signature and oras SBOM, the SBOM's cosign signature and an oras note on
// the SBOM (referrers of a referrer, both schemes).
func wantRows(action string, times int) map[string]int {
	return map[string]int{
		"  " + action:                                 2 * times,
		"image " + cosignSig + " " + action:           times,
		"image application/spdx+json " + action:       times,
		"sbom " + cosignSig + " " + action:            times,
		"sbom application/vnd.example.note " + action: times,
	}
}

// --- Image layouts ---

// ociIndex is the part of index.json and manifests the tests read.
type ociIndex struct {
	Manifests []struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
	Config *struct{ Digest string }  `json:"config"`
	Layers []struct{ Digest string } `json:"layers"`
}

// snapshot is every file of a tree with its size, time and content hash.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = fmt.Sprintf("%d %d %s", info.Size(), info.ModTime().UnixNano(), hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putLayoutBlob stores b in dir's blobs/sha256 and returns its digest.
func putLayoutBlob(t *testing.T, dir string, b []byte) string {
	t.Helper()
	d := registrytest.Digest(b)
	_ = os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// handLayout writes an OCI layout by hand with one image named name.
func handLayout(t *testing.T, dir, name string) string {
	t.Helper()
	put := func(b []byte) string { return putLayoutBlob(t, dir, b) }
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a tar, but bytes with a digest")
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		put(cfg), len(cfg), put(layer), len(layer)))
	d := put(m)
	writeFile(t, dir, "oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	writeFile(t, dir, "index.json", fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":%q}}]}`, d, len(m), name))
	return d
}

// extract unpacks an archive written by imagesync (for the checks only).
func extract(t *testing.T, archive string) string {
	t.Helper()
	out := t.TempDir()
	if b, err := exec.Command("tar", "-xf", archive, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf %s: %v %s", archive, err, b)
	}
	return out
}

// skopeo returns the path of skopeo, which reads OCI layouts independently
// of imagesync. scripts/test-deps.sh installs it where apt-get exists.
func skopeo(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IMAGESYNC_SKOPEO"); p != "" {
		return p
	}
	if p, err := exec.LookPath("skopeo"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/apt-get"); err == nil && runtime.GOOS == "linux" && os.Getenv(registrytest.EnvRequireRegistries) == "1" {
		t.Fatal("skopeo not found: scripts/test-deps.sh installs it")
	}
	t.Skip("skopeo not found")
	return ""
}

// --- Artifact clients (cosign, oras) ---

// clientTool returns the path of a client scripts/test-deps.sh installs
// (IMAGESYNC_COSIGN, IMAGESYNC_ORAS); missing, the test is skipped, or fails
// under IMAGESYNC_REQUIRE_REGISTRIES=1.
func clientTool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if os.Getenv(registrytest.EnvRequireRegistries) == "1" {
			t.Fatalf("%s is not set: run scripts/test-deps.sh", env)
		}
		t.Skipf("%s is not set: run scripts/test-deps.sh", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", env, p, err)
	}
	return p
}

// attachArtifact attaches a small file of artifactType to ref with oras
// (through the referrers tag schema: neither distribution serves the API)
// and returns the digest of the new manifest.
func (c *clients) attachArtifact(ref, artifactType, content string) string {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.home, "note.txt"), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	out := c.run(c.oras, "attach", "--plain-http", "--distribution-spec", "v1.1-referrers-tag", "--artifact-type", artifactType, "--format", "json", ref, "note.txt:text/plain")
	var res struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest == "" {
		c.t.Fatalf("oras attach output %q: %v", out, err)
	}
	return res.Digest
}

// clients runs cosign and oras with a home of their own, no proxy, and a
// cosign key pair made for the test.
type clients struct {
	t                  *testing.T
	cosign, oras, home string
	key, pub           string
}

func (c *clients) run(bin string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home, "DOCKER_CONFIG=" + filepath.Join(c.home, "docker"),
		"COSIGN_PASSWORD=", "TUF_ROOT=" + filepath.Join(c.home, "tuf"), "SIGSTORE_NO_CACHE=true", "NO_PROXY=*"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// sign signs ref (repo@digest) with the test key, without a transparency log.
func (c *clients) sign(ref string) {
	c.run(c.cosign, "sign", "--key", c.key, "--tlog-upload=false", "--yes", "--allow-http-registry", "--allow-insecure-registry", ref)
}

// verify runs cosign verify against ref with the test's public key.
func (c *clients) verify(ref string) {
	c.run(c.cosign, "verify", "--key", c.pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "--allow-insecure-registry", ref)
}

// attachSBOM attaches an SPDX document to ref with oras and returns its digest.
func (c *clients) attachSBOM(ref, spec string) string {
	f := filepath.Join(c.home, "sbom.spdx.json")
	if err := os.WriteFile(f, []byte(`{"spdxVersion":"SPDX-2.3","name":"`+ref+`"}`), 0o600); err != nil {
		c.t.Fatal(err)
	}
	args := []string{"attach", "--plain-http", "--artifact-type", "application/spdx+json", "--format", "json"}
	if spec != "" {
		args = append(args, "--distribution-spec", spec)
	}
	out := c.run(c.oras, append(args, ref, "sbom.spdx.json:application/spdx+json")...)
	var res struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Digest == "" {
		c.t.Fatalf("oras attach output %q: %v", out, err)
	}
	return res.Digest
}

// discover lists the referrers oras finds for ref, through the referrers API
// or the tag schema (spec), as the text of its JSON answer.
func (c *clients) discover(ref, spec string) string {
	return c.run(c.oras, "discover", "--plain-http", "--format", "json", "--distribution-spec", spec, ref)
}

func newClients(t *testing.T) *clients {
	c := &clients{t: t, cosign: clientTool(t, "IMAGESYNC_COSIGN"), oras: clientTool(t, "IMAGESYNC_ORAS"), home: t.TempDir()}
	c.run(c.cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(c.home, "test"))
	c.key, c.pub = filepath.Join(c.home, "test.key"), filepath.Join(c.home, "test.pub")
	return c
}

// fallbackTagOf is the referrers tag schema's tag for a digest.
func fallbackTagOf(d string) string { return strings.Replace(d, ":", "-", 1) }

// --- Long runs and processes ---

// bigSync is a sync of 16 images of 2 MiB, run as a separate process (the
// test binary acting as imagesync) so that it can be killed mid-run.
type bigSync struct {
	src, dst       *registrytest.Registry
	want           map[string]string // repository → digest
	images, ledger string
	cmd            *exec.Cmd
	stderr         strings.Builder
}

// checkMidRun fails unless some, but not all, images were copied.
func (b *bigSync) checkMidRun(t *testing.T) {
	t.Helper()
	copied := 0
	for repo := range b.want {
		if len(b.dst.Tags(t, repo)) > 0 {
			copied++
		}
	}
	if copied == 0 || copied == len(b.want) {
		t.Fatalf("%d of %d images copied when the process stopped: not mid-run", copied, len(b.want))
	}
	t.Logf("stopped with %d of %d images copied", copied, len(b.want))
}

// finish runs the sync again in-process and checks every digest.
func (b *bigSync) finish(t *testing.T) {
	t.Helper()
	if r := runCLI(t, nil, "--images", b.images, "--ledger", b.ledger); r.code != 0 {
		t.Fatalf("second run: exit %d", r.code)
	}
	for repo, d := range b.want {
		assertDigest(t, b.dst, repo, "1", d)
	}
}

func startBigSync(t *testing.T, seed int64) *bigSync {
	t.Helper()
	b := &bigSync{want: map[string]string{}}
	b.src, b.dst = pair(t, registrytest.Distribution3, registrytest.Options{})
	var rules strings.Builder
	for i := range 16 {
		repo := fmt.Sprintf("lib/big%d", i)
		b.want[repo], _ = b.src.PushRandomImage(t, repo, "1", linuxAmd64, 2, 1<<20, i%2 == 0, seed+int64(i))
		fmt.Fprintf(&rules, "%s/%s:1: %s/%s\n", b.src.Host, repo, b.dst.Host, repo)
	}
	dir := t.TempDir()
	b.images = writeFile(t, dir, "images.yaml", rules.String())
	b.ledger = filepath.Join(dir, "ledger.jsonl")
	b.cmd = exec.Command(os.Args[0], "--images", b.images, "--ledger", b.ledger, "--proc", "1")
	b.cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+dir)
	b.cmd.Stderr = &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A few images done (each writes two manifest records), more under way.
	deadline := time.Now().Add(time.Minute)
	for {
		if data, _ := os.ReadFile(b.ledger); strings.Count(string(data), `"t":"m"`) >= 5 {
			return b
		}
		if b.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatal("no progress in the ledger")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maxRSSOf is set where the platform reports a process's peak RSS.
var maxRSSOf func(*os.ProcessState) int64

// watchRSSOf, where set, follows a running process's own peak RSS in KiB
// until stop (see watchHWM); 0 where the platform cannot tell.
var watchRSSOf func(pid int) (stop func() int64)

func watchRSS(pid int) (stop func() int64) {
	if watchRSSOf == nil {
		return func() int64 { return 0 }
	}
	return watchRSSOf(pid)
}

func pod(containers ...string) corev1.PodSpec {
	var s corev1.PodSpec
	for i, c := range containers {
		s.Containers = append(s.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: c})
	}
	return s
}
