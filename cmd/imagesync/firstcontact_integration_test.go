package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// runBinary runs the real binary (this test binary acting as main) under
// the name argv0 (imagesync, docker-sync, kubectl-imagesync), in dir, with
// its own HOME and ledger.
func runBinary(t *testing.T, dir, argv0 string, env []string, args ...string) result {
	t.Helper()
	bin := filepath.Join(t.TempDir(), argv0)
	self, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	home := filepath.Dir(testLedger(t))
	cmd.Env = append(os.Environ(), append([]string{"IMAGESYNC_TEST_AS_MAIN=1", "HOME=" + home, "IMAGESYNC_LEDGER=" + testLedger(t),
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "KUBECONFIG=" + filepath.Join(home, "no-kubeconfig")}, env...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s → exit %d\nstdout:\n%s\nstderr:\n%s", argv0, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// The mistakes of the first ten minutes, through the real binary under its
// three names: each gets a one-line answer naming what was meant, exit 2,
// and nothing runs.
func TestFirstContactMistakes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	writeFile(t, dir, "images.yaml", "quay.io/a/b:1: reg.example.com/a/b\n")
	writeFile(t, dir, "auth.yaml", "reg.example.com:\n  username: u\n  password: p\n")
	tests := []struct {
		argv0  string
		args   []string
		stderr string // the whole of stderr, when it is one line
		has    []string
	}{
		{"imagesync", []string{"--auht", "auth.yaml", "--images", "images.yaml"}, "imagesync: unknown flag --auht, did you mean --auth?\n", nil},
		{"imagesync", []string{"--porc", "8", "--images", "images.yaml"}, "imagesync: unknown flag --porc, did you mean --proc?\n", nil},
		{"imagesync", []string{"--imgaes=images.yaml"}, "imagesync: unknown flag --imgaes, did you mean --images?\n", nil},
		{"imagesync", []string{"sync", "--auht", "auth.yaml"}, "imagesync: unknown flag --auht, did you mean --auth?\n", nil},
		{"imagesync", []string{"plan", "--imgaes", "images.yaml"}, "imagesync: unknown flag --imgaes, did you mean --images?\n", nil},
		{"imagesync", []string{"-x"}, "imagesync: unknown flag -x (imagesync --help lists the flags)\n", nil},
		{"docker-sync", []string{"sync", "--imgaes", "x"}, "docker sync: unknown flag --imgaes, did you mean --images?\n", nil},
		{"kubectl-imagesync", []string{"--imgaes", "x"}, "kubectl imagesync: unknown flag --imgaes, did you mean --images?\n", nil},
		{"imagesync", []string{"verify", "--dry-run"}, "imagesync: unknown flag --dry-run (imagesync verify --help lists the flags)\n", nil},
		{"imagesync", []string{"--proc"}, "imagesync: --proc needs a value: a number (default 5)\n", nil},
		{"imagesync", []string{"sync", "--images", "images.yaml", "--timeout"}, "imagesync: --timeout needs a value: a duration such as 30s or 2m (default 2m)\n", nil},
		{"imagesync", []string{"sync", "quay.io/a/b:1", "http://127.0.0.1:5000/a/b"}, "", []string{`"http://127.0.0.1:5000/a/b" is a URL`, "(127.0.0.1:5000/a/b)", "insecure: true"}},
		{"imagesync", []string{"https://quay.io/a/b:1", "127.0.0.1:5000/a/b"}, "", []string{`"https://quay.io/a/b:1" is a URL`}},
		{"imagesync", nil, "", []string{"imagesync: nothing to copy: give one of", "imagesync SRC DST [DST...]", "imagesync --images FILE [--auth FILE]", "imagesync -f FILE", "for example:\n  imagesync quay.io/"}},
		{"docker-sync", []string{"sync"}, "", []string{"docker sync: nothing to copy", "docker sync --images FILE", "for example:\n  docker sync quay.io/"}},
		{"kubectl-imagesync", nil, "", []string{"kubectl imagesync: nothing to copy", "kubectl imagesync -f FILE", "for example:\n  kubectl imagesync quay.io/"}},
		{"imagesync", []string{"--proc", "8"}, "", []string{"imagesync: nothing to copy: give one of"}},
		{"imagesync", []string{"ledger"}, "", []string{`imagesync: expected one of "export", "stats"`, "Usage: imagesync ledger <command>", "ledger stats"}},
		{"imagesync", []string{"completion"}, "", []string{"Usage: imagesync completion [flags] <shell>", "source <(imagesync completion bash)"}},
	}
	for _, tc := range tests {
		t.Run(tc.argv0+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			r := runBinary(t, dir, tc.argv0, nil, tc.args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d", r.code, exitUsage)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if tc.stderr != "" && r.stderr != tc.stderr {
				t.Errorf("stderr\n%q, want\n%q", r.stderr, tc.stderr)
			}
			for _, w := range tc.has {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if strings.Contains(r.stderr, "EOL") || strings.Contains(r.stderr, "unknown command") {
				t.Error("parser internals or a flag's value read as a command")
			}
		})
	}
}

// Other tools' habits copy what they mean: skopeo's docker:// prefix,
// crane's and skopeo's copy/cp, a destination that is only a registry
// (the source's repository path is kept under it), --dry-run as plan, and
// image-syncer's -n for the default namespace.
func TestOtherToolsHabits(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	digest, _ := src.PushRandomImage(t, "org/app", "1.0", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 1024, false, 7)
	dir := t.TempDir()

	// --dry-run is plan: it says so, decides, and writes nothing.
	r := runBinary(t, dir, "imagesync", nil, "--dry-run", "docker://"+src.Host+"/org/app:1.0", dst.Host)
	if r.code != exitOK || !strings.Contains(r.stderr, "imagesync: --dry-run: running imagesync plan") ||
		!strings.Contains(r.stdout, "copy") || !strings.Contains(r.stdout, dst.Host+"/org/app:1.0") {
		t.Errorf("--dry-run: exit %d, want a plan that copies to %s/org/app:1.0", r.code, dst.Host)
	}
	if n := dst.Log.Count("PUT", ".*"); n != 0 {
		t.Errorf("--dry-run wrote %d times to the destination", n)
	}

	// docker:// on both sides, a bare registry destination, copy and cp.
	for i, args := range [][]string{
		{"sync", "docker://" + src.Host + "/org/app:1.0", "docker://" + dst.Host + "/skopeo/app"},
		{"copy", src.Host + "/org/app:1.0", dst.Host},
		{"cp", src.Host + "/org/app:1.0", "DOCKER://" + dst.Host + "/cp/app:v1"},
	} {
		r := runBinary(t, dir, "imagesync", nil, args...)
		if r.code != exitOK {
			t.Fatalf("%d: exit %d", i, r.code)
		}
	}
	assertDigest(t, dst, "skopeo/app", "1.0", digest)
	assertDigest(t, dst, "org/app", "1.0", digest)
	assertDigest(t, dst, "cp/app", "v1", digest)

	// image-syncer's -n: an empty destination goes to R/N/<repository after its first component>.
	images := writeFile(t, dir, "images.yaml", src.Host+"/org/app:1.0: \"\"\n")
	r = runBinary(t, dir, "imagesync", nil, "--images", images, "--registry", dst.Host, "-n", "ns1")
	if r.code != exitOK {
		t.Fatalf("-n ns1: exit %d", r.code)
	}
	assertDigest(t, dst, "ns1/app", "1.0", digest)
}

// An unreachable registry, through the real binary: the failure says what
// was tried and after how many attempts; a name that does not exist is
// not retried.
func TestUnreachableSaysWhatWasTried(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	r := runBinary(t, dir, "imagesync", nil, "sync", "--retries", "1", "--no-ledger", closed+"/a/b:1", closed+"/c/d")
	want := fmt.Sprintf("failed   %[1]s/a/b:1 → %[1]s/c/d:1 (after 2 attempts): registry %[1]s is not reachable: https://%[1]s/v2/: connection refused; http://%[1]s/v2/: connection refused\n", closed)
	if r.code != exitAllFailed || !strings.Contains(r.stderr, want) {
		t.Errorf("closed port: exit %d, want %d and the line\n%s", r.code, exitAllFailed, want)
	}
	if strings.Contains(r.stderr, "plain HTTP") {
		t.Error("a loopback address is told plain HTTP is not used for it")
	}
	// Warnings in the plain style of the other lines, not slog's time=… level=WARN.
	if !regexp.MustCompile(`(?m)^warning: will retry: source=`+regexp.QuoteMeta(closed)+`/a/b:1 destination=\S+ attempt=1 after=\S+ error="registry `).MatchString(r.stderr) || strings.Contains(r.stderr, "level=") {
		t.Error("the retry warning is not a plain \"warning: will retry: …\" line")
	}

	const nx = "no-such-registry.invalid"
	if _, err := net.DefaultResolver.LookupHost(t.Context(), nx); !isNotFound(err) {
		t.Skipf("this machine's resolver does not answer that %s does not exist: %v", nx, err)
	}
	r = runBinary(t, dir, "imagesync", nil, "sync", "--retries", "3", "--no-ledger", nx+"/a/b:1", closed+"/c/d")
	want = fmt.Sprintf("failed   %[1]s/a/b:1 → %[2]s/c/d:1: registry %[1]s is not reachable: https://%[1]s/v2/: no such host\n", nx, closed)
	if r.code != exitAllFailed || !strings.Contains(r.stderr, want) {
		t.Errorf("no such host: exit %d, want %d and the line\n%s", r.code, exitAllFailed, want)
	}
	if strings.Contains(r.stderr, "will retry") {
		t.Error("a name that does not exist was retried")
	}
}

func isNotFound(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound
}

// sync, plan and verify read as one program (issue #23): SRC → DST in
// each; verify tells filtered images and unchecked ones from mismatches;
// one JSON casing; the sync line says when a platform filter rewrote the
// index; no "1 errors" or "every one of 1 jobs".
func TestOutputReadsAsOneProgram(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	linux := func(a string) registrytest.Platform { return registrytest.Platform{OS: "linux", Arch: a} }
	app, _ := src.PushRandomImage(t, "org/app", "1.0", linux("amd64"), 1, 1024, false, 1)
	src.PushRandomImage(t, "org/app", "2.0", linux("arm64"), 1, 1024, false, 2)
	multi, _, _ := src.PushIndex(t, "org/multi", "v1", []registrytest.Platform{linux("amd64"), linux("arm64")}, true, 3)
	dir := t.TempDir()
	S, D := src.Host, dst.Host
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/org/app:1.0: %[2]s/org/app\n%[1]s/org/multi:v1: %[2]s/org/multi\n", S, D))
	r := runBinary(t, dir, "imagesync", nil, "sync", "--images", images, "--platform", "linux/amd64")
	if r.code != exitOK || !strings.Contains(r.stderr, fmt.Sprintf("copied   %[1]s/org/multi:v1 → %[2]s/org/multi:v1 sha256:", S, D)) ||
		!strings.Contains(r.stderr, "(index rewritten by the platform filter; source "+multi[:len("sha256:")+12]+")") {
		t.Errorf("sync with a platform filter: exit %d; the line must say the index was rewritten", r.code)
	}

	images2 := writeFile(t, dir, "images2.yaml", fmt.Sprintf("%[1]s/org/app:1.0: %[2]s/org/app\n%[1]s/org/app:2.0: %[2]s/org/app\n%[1]s/org/app:9.9: %[2]s/org/app\n", S, D))
	r = runBinary(t, dir, "imagesync", nil, "verify", "--images", images2, "--arch", "amd64")
	for _, want := range []string{
		fmt.Sprintf("ok       %[1]s/org/app:1.0 → %[2]s/org/app:1.0 %[3]s\n", S, D, app[:len("sha256:")+12]),
		fmt.Sprintf("filtered %[1]s/org/app:2.0 → %[2]s/org/app:2.0: image platform linux/arm64 does not match the filter arch=amd64\n", S, D),
		fmt.Sprintf("ERROR    %[1]s/org/app:9.9 → %[2]s/org/app:9.9\n", S, D),
		"\n1 match, 0 differ, 1 not checked, 1 filtered\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify table lacks %q", want)
		}
	}
	if r.code != exitSomeFail || strings.Contains(r.stdout, "MISMATCH") || strings.Contains(r.stdout, "←") {
		t.Errorf("verify: exit %d, want %d, no MISMATCH and no ←", r.code, exitSomeFail)
	}
	r = runBinary(t, dir, "imagesync", nil, "verify", "--images", images2, "--arch", "amd64", "-o", "json")
	var v struct {
		Jobs []struct {
			Destination, Status, Reason string
			OK                          bool
		}
		Summary map[string]int
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range v.Jobs {
		got[strings.TrimPrefix(j.Destination, D+"/")] = j.Status
	}
	if got["org/app:1.0"] != "ok" || got["org/app:2.0"] != "filtered" || got["org/app:9.9"] != "error" ||
		v.Summary["ok"] != 1 || v.Summary["filtered"] != 1 || v.Summary["error"] != 1 || v.Summary["mismatch"] != 0 {
		t.Errorf("verify -o json: statuses %v, summary %v", got, v.Summary)
	}

	r = runBinary(t, dir, "imagesync", nil, "plan", "--images", images2, "--arch", "amd64")
	if !strings.Contains(r.stdout, ", 1 error; ") || strings.Contains(r.stdout, "1 errors") {
		t.Error("plan summary: want \"1 error\"")
	}
	r = runBinary(t, dir, "imagesync", nil, "sync", "--images", images, "--platform", "linux/amd64", "-o", "json")
	if !strings.Contains(r.stdout, `"sourceDigest": "`+multi+`"`) || regexp.MustCompile(`"[a-z]+_[a-z_]+":`).MatchString(r.stdout) {
		t.Errorf("sync -o json: want camelCase keys only (sourceDigest)")
	}
	r = runBinary(t, dir, "imagesync", nil, "sync", "--retries", "0", S+"/org/app:9.9", D+"/org/app")
	if r.code != exitAllFailed || !strings.HasSuffix(r.stderr, "imagesync: the job failed\n") {
		t.Errorf("one failed job: exit %d, want %d and \"the job failed\"", r.code, exitAllFailed)
	}
}

// A command's help reads as kubectl's: the usage line with SRC DST, the
// command's own flags first, a short block of global flags, the examples
// (a one-off copy among them) and exit codes last.
func TestCommandHelpLayout(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	for _, tc := range []struct{ argv0, cmd, name string }{
		{"imagesync", "sync", "imagesync"}, {"imagesync", "plan", "imagesync"}, {"imagesync", "verify", "imagesync"}, {"docker-sync", "plan", "docker sync"},
	} {
		args := []string{tc.cmd, "--help"}
		if tc.argv0 == "docker-sync" {
			args = append([]string{"sync"}, args...)
		}
		r := runBinary(t, dir, tc.argv0, nil, args...)
		out := r.stdout
		wantUsage := "Usage: " + tc.name + " " + tc.cmd + " [flags] [SRC DST...]\n"
		own, global, examples := strings.Index(out, "--images=FILE"), strings.Index(out, "\nGlobal flags:\n"), strings.Index(out, "\nExamples:\n  "+tc.name+" ")
		if r.code != exitOK || !strings.HasPrefix(out, wantUsage) || own < 0 || global < own || examples < global || !strings.Contains(out[examples:], "Exit codes:") {
			t.Errorf("%s %s --help: want %q first, own flags, Global flags, then Examples and Exit codes", tc.name, tc.cmd, wantUsage)
		}
		if strings.Count(out, "--log-format") != 1 || strings.Count(out, "--no-progress") != 1 {
			t.Errorf("%s --help: the global flags appear more than once", tc.cmd)
		}
		if !regexp.MustCompile(`(?m)^  ` + tc.name + ` (` + tc.cmd + ` )?[a-z0-9.]+/[^ ]+ [a-z0-9.]+/`).MatchString(out[max(examples, 0):]) {
			t.Errorf("%s --help shows no one-off SRC DST example", tc.cmd)
		}
	}
	r := runBinary(t, dir, "imagesync", nil, "version", "--help")
	if strings.Contains(r.stdout, "--version") || !strings.Contains(r.stdout, "Global flags:") {
		t.Errorf("version --help lists --version:\n%s", r.stdout)
	}
}

// status (and job --apply, --from-cluster) without any kubeconfig: one
// clean line saying what to give, not client-go's KUBERNETES_MASTER.
func TestStatusWithoutKubeconfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	for _, argv0 := range []string{"imagesync", "kubectl-imagesync"} {
		r := runBinary(t, dir, argv0, []string{"KUBERNETES_SERVICE_HOST="}, "status", "nightly")
		name := strings.ReplaceAll(argv0, "-", " ")
		want := name + ": no Kubernetes cluster configured: give --kubeconfig FILE (or --server URL), set KUBECONFIG, or write ~/.kube/config (in a pod, its service account is used)\n"
		if r.code != exitUsage || r.stderr != want || strings.Contains(r.stderr, "KUBERNETES_MASTER") {
			t.Errorf("%s status without a kubeconfig: exit %d\n got %q\nwant %q", argv0, r.code, r.stderr, want)
		}
	}
}

// convert writes auth-file: as given, so the converted file next to the
// auth file keeps working wherever the folder goes.
func TestConvertWritesAuthFileAsGiven(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	digest, _ := src.PushRandomImage(t, "org/app", "1.0", linuxAmd64, 1, 512, false, 5)
	dir := t.TempDir()
	writeFile(t, dir, "images.yaml", src.Host+"/org/app:1.0: "+dst.Host+"/org/app\n")
	writeFile(t, dir, "auth.yaml", dst.Host+":\n  username: robot\n  password: s3cret\n")
	r := runBinary(t, dir, "imagesync", nil, "convert", "--images", "images.yaml", "--auth", "auth.yaml")
	if r.code != exitOK || !regexp.MustCompile(`(?m)^auth-file: auth\.yaml$`).MatchString(r.stdout) || strings.Contains(r.stdout, dir) {
		t.Fatalf("convert: exit %d, want auth-file: auth.yaml as given", r.code)
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	writeFile(t, moved, "imagesync.yaml", r.stdout)
	if r := runBinary(t, t.TempDir(), "imagesync", nil, "sync", "-f", filepath.Join(moved, "imagesync.yaml")); r.code != exitOK {
		t.Fatalf("sync -f of the converted file, moved: exit %d", r.code)
	}
	assertDigest(t, dst, "org/app", "1.0", digest)
}

// --log-format json: every line on stderr is a JSON object — warnings,
// per-image lines, the summary and the last word — in one casing.
func TestLogFormatJSONEveryLine(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	linux := func(a string) registrytest.Platform { return registrytest.Platform{OS: "linux", Arch: a} }
	app, _ := src.PushRandomImage(t, "org/app", "1.0", linux("amd64"), 1, 1024, false, 1)
	src.PushRandomImage(t, "org/app", "2.0", linux("arm64"), 1, 1024, false, 2)
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/org/app:1.0: %[2]s/org/app\n%[1]s/org/app:2.0: %[2]s/org/app\n%[1]s/org/app:9.9: %[2]s/org/app\n", src.Host, dst.Host))
	r := runBinary(t, dir, "imagesync", nil, "sync", "--images", images, "--arch", "amd64", "--retries", "1", "--log-format", "json")
	if r.code != exitSomeFail {
		t.Fatalf("exit %d, want %d", r.code, exitSomeFail)
	}
	msgs := map[string]int{}
	actions := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line without %q: %q", k, line)
			}
		}
		for k := range rec {
			if strings.Contains(k, "_") {
				t.Errorf("key %q is not camelCase: %q", k, line)
			}
		}
		msg, _ := rec["msg"].(string)
		msgs[msg]++
		if msg == "job" {
			actions[rec["destination"].(string)] = rec["action"].(string)
			if rec["destination"] == dst.Host+"/org/app:1.0" && rec["digest"] != app {
				t.Errorf("job line without the digest: %q", line)
			}
		}
		if msg == "summary" && (rec["copied"] != 1.0 || rec["filtered"] != 1.0 || rec["failed"] != 1.0) {
			t.Errorf("summary line: %q", line)
		}
	}
	if actions[dst.Host+"/org/app:1.0"] != "copied" || actions[dst.Host+"/org/app:2.0"] != "filtered" || actions[dst.Host+"/org/app:9.9"] != "failed" {
		t.Errorf("job lines: %v", actions)
	}
	if msgs["summary"] != 1 || msgs["imagesync: 1 of 3 jobs failed"] != 1 {
		t.Errorf("messages %v: want one summary and the last word", msgs)
	}
}
