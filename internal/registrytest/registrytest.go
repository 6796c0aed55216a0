// Package registrytest starts real container registry servers (CNCF
// distribution 2.8 and 3.x) on loopback for integration tests, with a
// request-counting reverse proxy in front of each and helpers to seed content.
//
// The server binaries are found by [Binary]; run scripts/test-deps.sh to
// install them. When a binary is missing the test is skipped, unless the
// environment variable IMAGESYNC_REQUIRE_REGISTRIES=1 is set, in which case
// it fails.
package registrytest

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind of real server.
type Kind string

const (
	// Distribution2 is Debian's docker-registry (github.com/docker/distribution 2.8).
	Distribution2 Kind = "distribution-2.8"
	// Distribution3 is github.com/distribution/distribution/v3 cmd/registry.
	Distribution3 Kind = "distribution-3"
)

// Environment variables understood by this package.
const (
	EnvRegistryV2        = "IMAGESYNC_REGISTRY_V2"
	EnvRegistryV3        = "IMAGESYNC_REGISTRY_V3"
	EnvRequireRegistries = "IMAGESYNC_REQUIRE_REGISTRIES"
)

// Kinds returns all supported server kinds.
func Kinds() []Kind { return []Kind{Distribution2, Distribution3} }

// Binary returns the server binary for kind: env IMAGESYNC_REGISTRY_V2 /
// IMAGESYNC_REGISTRY_V3 first, then /usr/bin/docker-registry (v2) resp.
// `registry` in <repo>/bin, $GOBIN, $GOPATH/bin and PATH (v3).
func Binary(kind Kind) (string, error) {
	switch kind {
	case Distribution2:
		if p := os.Getenv(EnvRegistryV2); p != "" {
			return checkExecutable(p, EnvRegistryV2)
		}
		const deb = "/usr/bin/docker-registry"
		if isExecutable(deb) {
			return deb, nil
		}
		return "", fmt.Errorf("registrytest: %s not found (set %s or run scripts/test-deps.sh)", deb, EnvRegistryV2)
	case Distribution3:
		if p := os.Getenv(EnvRegistryV3); p != "" {
			return checkExecutable(p, EnvRegistryV3)
		}
		var dirs []string
		if root := repoRoot(); root != "" {
			dirs = append(dirs, filepath.Join(root, "bin"))
		}
		if gobin := os.Getenv("GOBIN"); gobin != "" {
			dirs = append(dirs, gobin)
		}
		for _, gp := range filepath.SplitList(goPath()) {
			if gp != "" {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
		for _, d := range dirs {
			if p := filepath.Join(d, "registry"); isExecutable(p) {
				return p, nil
			}
		}
		if p, err := exec.LookPath("registry"); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("registrytest: distribution v3 `registry` binary not found in %s or PATH (set %s or run scripts/test-deps.sh)",
			strings.Join(dirs, ", "), EnvRegistryV3)
	default:
		return "", fmt.Errorf("registrytest: unknown kind %q", kind)
	}
}

func checkExecutable(p, env string) (string, error) {
	if !isExecutable(p) {
		return "", fmt.Errorf("registrytest: %s=%s is not an executable file", env, p)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

var (
	goPathOnce sync.Once
	goPathVal  string
)

// goPath returns $GOPATH, falling back to `go env GOPATH` and ~/go.
func goPath() string {
	goPathOnce.Do(func() {
		if gp := os.Getenv("GOPATH"); gp != "" {
			goPathVal = gp
			return
		}
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			if gp := strings.TrimSpace(string(out)); gp != "" {
				goPathVal = gp
				return
			}
		}
		if home, err := os.UserHomeDir(); err == nil {
			goPathVal = filepath.Join(home, "go")
		}
	})
	return goPathVal
}

// repoRoot returns the module root: derived from this source file's location,
// falling back to walking up from the working directory to a go.mod.
func repoRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Options configure a registry started by [Start].
type Options struct {
	// Htpasswd maps user -> password; non-empty enables htpasswd (basic) auth.
	// Hashes are made with `htpasswd -Bbn` (apache2-utils).
	Htpasswd map[string]string
	// TLS serves HTTPS (server and proxy) with a freshly generated CA and a
	// leaf certificate for 127.0.0.1, ::1 and localhost. See Registry.CAPEM.
	TLS bool
	// ClientCert (with TLS) makes the proxy — the TLS endpoint the code under
	// test talks to — require a client certificate signed by the test CA;
	// see Registry.ClientCertPEM and ClientKeyPEM.
	ClientCert bool
	// Token makes the server demand bearer tokens from a token server the
	// harness runs at /token on Host (see TokenAuth). Not with Htpasswd.
	Token *TokenAuth
	// SparseIndexes (distribution 3 only) accepts image indexes whose child
	// manifests are missing (validation.manifests.indexes.platforms: none),
	// as platform-mode keep-index needs. Distribution 2.8 has no such setting.
	SparseIndexes bool
}

// Registry is a running real registry server plus counting proxy.
type Registry struct {
	Kind Kind
	// Host is "127.0.0.1:PORT" of the counting proxy in front of the server:
	// what the code under test talks to.
	Host string
	// Direct is "127.0.0.1:PORT" of the server itself, for seeding without
	// being counted.
	Direct string
	// CAPEM is the PEM encoded CA certificate when Options.TLS is set.
	CAPEM []byte
	// ClientCertPEM and ClientKeyPEM are a client certificate the proxy
	// accepts (Options.ClientCert).
	ClientCertPEM, ClientKeyPEM []byte
	// Dir is the filesystem storage root.
	Dir string
	// Log records every request that went through the proxy.
	Log *RequestLog
	// Tokens records the token server's requests (with Options.Token).
	Tokens *TokenLog

	opt    Options
	tokens *tokenServer
	user   string // credentials used by the seeding helpers
	pass   string
	client *http.Client // talks to Direct
}

// Scheme returns "https" when the registry serves TLS, else "http".
func (r *Registry) Scheme() string {
	if r.opt.TLS {
		return "https"
	}
	return "http"
}

// URL returns Scheme()://Host (the proxy) followed by path.
func (r *Registry) URL(path string) string { return r.Scheme() + "://" + r.Host + path }

// CertPool returns a pool trusting CAPEM, or nil without TLS.
func (r *Registry) CertPool() *x509.CertPool {
	if len(r.CAPEM) == 0 {
		return nil
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(r.CAPEM)
	return p
}

// Client returns an *http.Client that trusts the registry CA (if any). It
// sends no credentials by itself.
func (r *Registry) Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if r.opt.TLS {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.CertPool(), MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

func requireRegistries() bool { return os.Getenv(EnvRequireRegistries) == "1" }

func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireRegistries() {
		t.Fatalf(format+" ("+EnvRequireRegistries+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// Start starts a real server of that kind on a free loopback port with
// filesystem storage in t.TempDir() and a counting reverse proxy in front of
// it. It returns once GET /v2/ answers 200 or 401; both are stopped in
// t.Cleanup. Under go test -short the test is skipped: every test that
// starts a registry is an integration test. If the binary cannot be found
// the test is skipped, unless IMAGESYNC_REQUIRE_REGISTRIES=1, then it fails.
func Start(t testing.TB, kind Kind, opt Options) *Registry {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real registry server (skipped with -short)")
	}
	bin, err := Binary(kind)
	if err != nil {
		skipOrFatal(t, "%v", err)
	}
	dir := t.TempDir() // registered first, so it is removed after the processes stopped
	r := &Registry{Kind: kind, Dir: filepath.Join(dir, "storage"), Log: &RequestLog{}, opt: opt}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: warn\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: %q\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n", r.Dir)

	if opt.SparseIndexes {
		if kind != Distribution3 {
			t.Fatalf("registrytest: SparseIndexes needs %s, not %s", Distribution3, kind)
		}
		cfg.WriteString("validation:\n  manifests:\n    indexes:\n      platforms: none\n")
	}

	if len(opt.Htpasswd) > 0 {
		users := make([]string, 0, len(opt.Htpasswd))
		for u := range opt.Htpasswd {
			users = append(users, u)
		}
		sort.Strings(users)
		r.user, r.pass = users[0], opt.Htpasswd[users[0]]
		htpasswdBin, err := exec.LookPath("htpasswd")
		if err != nil {
			skipOrFatal(t, "registrytest: htpasswd (apache2-utils) not found, needed for Options.Htpasswd: %v", err)
		}
		var file bytes.Buffer
		for _, u := range users {
			out, err := exec.Command(htpasswdBin, "-Bbn", "-C", "4", u, opt.Htpasswd[u]).Output()
			if err != nil {
				t.Fatalf("registrytest: htpasswd -Bbn %s: %v", u, err)
			}
			file.WriteString(strings.TrimSpace(string(out)) + "\n")
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: test\n    path: %q\n", path)
	}

	// The proxy's listener comes first: a token realm names its address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registrytest: proxy listen: %v", err)
	}
	r.Host = ln.Addr().String()
	if opt.Token != nil {
		r.Tokens = &TokenLog{}
		ts, bundle, err := newTokenServer(*opt.Token, dir, r.Tokens)
		if err != nil {
			t.Fatalf("registrytest: token server: %v", err)
		}
		r.tokens = ts
		fmt.Fprintf(&cfg, "auth:\n  token:\n    realm: %q\n    service: %q\n    issuer: %q\n    rootcertbundle: %q\n",
			r.Scheme()+"://"+r.Host+"/token", tokenService, tokenIssuer, bundle)
	}

	var serverTLS *tls.Config
	if opt.TLS {
		ca, certPEM, keyPEM, leaf, client, err := generateCertsWithClient(opt.ClientCert)
		if err != nil {
			t.Fatalf("registrytest: generate certificates: %v", err)
		}
		r.ClientCertPEM, r.ClientKeyPEM = client[0], client[1]
		r.CAPEM = ca
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
		if opt.ClientCert {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			serverTLS.ClientAuth, serverTLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
		}
		fmt.Fprintf(&cfg, "http:\n  tls:\n    certificate: %q\n    key: %q\n", certFile, keyFile)
	} else {
		cfg.WriteString("http:\n")
	}
	var secret [16]byte
	_, _ = cryptorand.Read(secret[:])
	fmt.Fprintf(&cfg, "  secret: %q\n", hex.EncodeToString(secret[:]))
	r.client = r.Client()
	t.Cleanup(r.client.CloseIdleConnections)

	// Start the server, retrying when the port we picked was taken meanwhile.
	var proc *serverProcess
	logPath := filepath.Join(dir, "server.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("registrytest: pick port: %v", err)
		}
		r.Direct = "127.0.0.1:" + strconv.Itoa(port)
		cfgPath := filepath.Join(dir, "config.yml")
		full := cfg.String() + fmt.Sprintf("  addr: %q\n", r.Direct)
		if err := os.WriteFile(cfgPath, []byte(full), 0o644); err != nil {
			t.Fatal(err)
		}
		var portTaken bool
		proc, portTaken, err = startServer(bin, cfgPath, logPath, r)
		if err == nil {
			break
		}
		if attempt < 5 && portTaken {
			t.Logf("registrytest: %s: port %d was taken, retrying: %v", kind, port, err)
			continue
		}
		t.Logf("registrytest: %s server log (%s), tail:\n%s", kind, logPath, logTail(logPath))
		t.Fatalf("registrytest: start %s (%s): %v", kind, bin, err)
	}
	t.Cleanup(proc.stop)

	// Counting proxy.
	proxyLog, err := os.Create(filepath.Join(dir, "proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           newProxy(r, log.New(proxyLog, "proxy: ", log.LstdFlags)),
		ErrorLog:          log.New(proxyLog, "proxy-server: ", log.LstdFlags),
		ReadHeaderTimeout: 30 * time.Second,
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		_ = proxyLog.Close()
	})
	return r
}

// ForEachKind runs f as a subtest per kind, each with its own fresh registry.
func ForEachKind(t *testing.T, opt Options, f func(t *testing.T, r *Registry)) {
	t.Helper()
	for _, kind := range Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			f(t, Start(t, kind, opt))
		})
	}
}

type serverProcess struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logFile *os.File
}

func (p *serverProcess) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	_ = p.logFile.Close()
}

// startServer starts the binary and waits for GET /v2/ to answer 200 or 401.
// To make sure the answer comes from our process and not from another server
// that grabbed the port meanwhile, it plants a marker blob in the storage
// before the start and requires it to be served (the marker is removed
// afterwards). portTaken reports a failure that a new port may fix.
func startServer(bin, cfgPath, logPath string, r *Registry) (p *serverProcess, portTaken bool, err error) {
	markerRepo, markerDigest, cleanMarker, err := plantMarker(r.Dir)
	if err != nil {
		return nil, false, err
	}
	defer cleanMarker()

	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, false, err
	}
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	fmt.Fprintf(logFile, "=== %s serve %s (addr %s)\n", bin, cfgPath, r.Direct)
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = serverEnv()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, false, err
	}
	p = &serverProcess{cmd: cmd, exited: make(chan struct{}), logFile: logFile}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	addrInUse := func() bool {
		b, _ := os.ReadFile(logPath)
		return int64(len(b)) > logStart && bytes.Contains(b[logStart:], []byte("address already in use"))
	}

	base := r.Scheme() + "://" + r.Direct
	probe := func(method, path string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, nil)
		if r.user != "" && method == http.MethodHead {
			req.SetBasicAuth(r.user, r.pass)
		}
		if r.tokens != nil && method == http.MethodHead {
			req.Header.Set("Authorization", "Bearer "+r.tokens.seedToken(path))
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			logFile.Close()
			return nil, addrInUse(), fmt.Errorf("server exited before becoming ready: %v", p.waitErr)
		default:
		}
		code, err := probe(http.MethodGet, "/v2/")
		if err == nil && (code == http.StatusOK || code == http.StatusUnauthorized) {
			code, err = probe(http.MethodHead, "/v2/"+markerRepo+"/blobs/"+markerDigest)
			if err == nil && code == http.StatusOK {
				return p, false, nil
			}
			// Not our server (or ours is not serving storage yet): if ours
			// died on the port, retry on another one.
			select {
			case <-p.exited:
			case <-time.After(200 * time.Millisecond):
			}
			if addrInUse() {
				p.stop()
				return nil, true, fmt.Errorf("%s is served by another process", r.Direct)
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			if err == nil {
				err = fmt.Errorf("last probe answered %d", code)
			}
			return nil, addrInUse(), fmt.Errorf("server not ready after 30s: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// plantMarker writes a random blob linked into a random repository directly
// into the filesystem storage layout shared by distribution 2.x and 3.x.
func plantMarker(root string) (repo, digest string, clean func(), err error) {
	var rnd [16]byte
	_, _ = cryptorand.Read(rnd[:])
	content := []byte("registrytest marker " + hex.EncodeToString(rnd[:]))
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	repo = "registrytest-marker-" + hex.EncodeToString(rnd[:4])
	base := filepath.Join(root, "docker", "registry", "v2")
	blobDir := filepath.Join(base, "blobs", "sha256", h[:2], h)
	repoDir := filepath.Join(base, "repositories", repo)
	linkDir := filepath.Join(repoDir, "_layers", "sha256", h)
	clean = func() {
		_ = os.RemoveAll(repoDir)
		_ = os.RemoveAll(blobDir)
		_ = os.Remove(filepath.Dir(blobDir)) // only if empty
	}
	for _, d := range []string{blobDir, linkDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", clean, err
		}
	}
	if err := os.WriteFile(filepath.Join(blobDir, "data"), content, 0o644); err != nil {
		return "", "", clean, err
	}
	if err := os.WriteFile(filepath.Join(linkDir, "link"), []byte("sha256:"+h), 0o644); err != nil {
		return "", "", clean, err
	}
	return repo, "sha256:" + h, clean, nil
}

// serverEnv is the environment for the server: ours minus REGISTRY_* config
// overrides, with OpenTelemetry export (distribution v3) switched off.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
