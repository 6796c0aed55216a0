package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// clientBinary finds a real client binary (docker, kubectl): a skip when absent,
// a failure when IMAGESYNC_REQUIRE_CLIENTS=1 (make test sets it).
func clientBinary(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("IMAGESYNC_REQUIRE_CLIENTS") == "1" {
			t.Fatalf("%s not found: %v", name, err)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

func runTool(t *testing.T, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), append([]string{"IMAGESYNC_TEST_AS_MAIN=1"}, env...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	t.Logf("%s %s → %d\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// The Docker CLI plugin installed as users do (make install): in
// $HOME/.docker/cli-plugins of a temporary HOME. Docker looks there only
// without --config/DOCKER_CONFIG; the forms that work with another config
// folder are tested here, as the README documents them.
func TestDockerCLIPlugin(t *testing.T) {
	t.Parallel()
	docker := clientBinary(t, "docker")
	const pw = "d0cker-Plugin-pw"
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{Htpasswd: map[string]string{"ci": pw}})
	digest, _, _ := src.PushIndex(t, "lib/multi", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 101)
	work := t.TempDir()
	home := filepath.Join(work, "home")
	plugins := filepath.Join(home, ".docker", "cli-plugins")
	installAs(t, plugins, "docker-sync")
	writeFile(t, filepath.Join(home, ".docker"), "config.json", `{}`)
	cfg := filepath.Join(work, "dockercfg") // another docker config folder, with the credentials
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	auths := fmt.Sprintf(`"auths": {"%s": {"auth": "%s"}}`, dst.Host, basicAuth("ci", pw))
	writeFile(t, cfg, "config.json", "{"+auths+"}")
	images := writeFile(t, work, "images.yaml", fmt.Sprintf("%s/lib/multi:1: %s/mirror/multi\n", src.Host, dst.Host))
	env := []string{"HOME=" + home, "DOCKER_CONFIG=", "IMAGESYNC_LEDGER=" + filepath.Join(work, "ledger.jsonl")}

	out, _, code := runTool(t, env, docker, "--help")
	if code != 0 || !strings.Contains(out, "sync*") || !strings.Contains(out, "Copy container images between registries") {
		t.Fatalf("docker --help does not list the sync plugin (exit %d)", code)
	}
	out, _, code = runTool(t, env, docker, "sync", "--help")
	if code != 0 || !strings.Contains(out, "Usage: docker sync") || !strings.Contains(out, "--images=FILE") {
		t.Fatalf("docker sync --help: exit %d", code)
	}
	out, _, code = runTool(t, env, docker, "sync", "sync", "--help")
	if code != 0 || !strings.Contains(out, "docker sync --docker-config ~/.docker-ci") || strings.Contains(out, "docker --config") {
		t.Fatalf("docker sync sync --help does not show the working form: exit %d", code)
	}
	out, _, code = runTool(t, env, docker, "help", "sync")
	if code != 0 || !strings.Contains(out, "docker sync") {
		t.Errorf("docker help sync: exit %d", code)
	}

	// plan through docker, with the credentials of another folder (the
	// destination answers 401 without them: the job would be an error).
	planWith := func(name string, env []string, args ...string) {
		t.Helper()
		out, _, code := runTool(t, env, docker, args...)
		var p planDoc
		if code != 0 || json.Unmarshal([]byte(out), &p) != nil || len(p.Jobs) != 1 || (p.Jobs[0].Action != "copy" && p.Jobs[0].Action != "skip") || p.Jobs[0].Digest != digest {
			t.Fatalf("%s: exit %d, %+v", name, code, p)
		}
	}
	planWith("docker sync plan --docker-config DIR", env, "sync", "plan", "--docker-config", cfg, "--images", images, "-o", "json")
	// `docker sync` with no subcommand syncs.
	if _, _, code = runTool(t, env, docker, "sync", "--docker-config", cfg, "--images", images); code != 0 {
		t.Fatalf("docker sync: exit %d", code)
	}
	assertDigest(t, dst, "mirror/multi", "1", digest)

	// The credentials really came from that folder: without it, a 401.
	dst.DeleteManifest(t, "mirror/multi", digest)
	_, stderr, code := runTool(t, append(env, "IMAGESYNC_LEDGER="+filepath.Join(work, "ledger2.jsonl")), docker, "sync", "--images", images)
	if code == 0 || !strings.Contains(stderr, "401") {
		t.Fatalf("without the credentials: exit %d", code)
	}

	// docker --config DIR (or DOCKER_CONFIG=DIR) makes Docker look for
	// plugins in DIR/cli-plugins and the system folders, not in
	// ~/.docker/cli-plugins: it finds the plugin once DIR's config.json
	// lists that folder in cliPluginsExtraDirs (or the plugin is in a
	// system folder: make install-docker-system).
	if _, stderr, code := runTool(t, env, docker, "--config", cfg, "sync", "version"); code == 0 {
		t.Logf("this Docker CLI finds ~/.docker/cli-plugins under --config too: %s", stderr)
	}
	writeFile(t, cfg, "config.json", fmt.Sprintf(`{%s, "cliPluginsExtraDirs": [%q]}`, auths, plugins))
	planWith("docker --config DIR sync plan", env, "--config", cfg, "sync", "plan", "--images", images, "-o", "json")
	planWith("DOCKER_CONFIG=DIR docker sync plan", append(env, "DOCKER_CONFIG="+cfg), "sync", "plan", "--images", images, "-o", "json")

	// Completion through the Docker CLI's protocol.
	out, _, _ = runTool(t, env, docker, "__complete", "sync", "--ima")
	if !strings.Contains(out, "--images") {
		t.Errorf("docker completion of sync flags: %q", out)
	}
}

func TestKubectlPlugin(t *testing.T) {
	t.Parallel()
	kubectl := clientBinary(t, "kubectl")
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 500, false, 111)
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	installAs(t, bin, "kubectl-imagesync")
	installAs(t, bin, "kubectl_complete-imagesync")
	images := writeFile(t, work, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/mirror/app\n", src.Host, dst.Host))
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + work, "KUBECONFIG=" + filepath.Join(work, "kubeconfig"),
		"IMAGESYNC_LEDGER=" + filepath.Join(work, "ledger.jsonl")}

	out, stderr, code := runTool(t, env, kubectl, "plugin", "list")
	if code != 0 || !strings.Contains(out, filepath.Join(bin, "kubectl-imagesync")) || strings.Contains(strings.ToLower(out+stderr), "warning") {
		t.Fatalf("kubectl plugin list: exit %d", code)
	}
	out, _, code = runTool(t, env, kubectl, "imagesync", "--help")
	if code != 0 || !strings.Contains(out, "Usage: kubectl imagesync") {
		t.Fatalf("kubectl imagesync --help: exit %d", code)
	}
	if _, _, code = runTool(t, env, kubectl, "imagesync", "sync", "--images", images); code != 0 {
		t.Fatalf("kubectl imagesync sync: exit %d", code)
	}
	assertDigest(t, dst, "mirror/app", "1", d)
	out, _, code = runTool(t, env, kubectl, "imagesync", "verify", "--images", images, "-o", "json")
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("kubectl imagesync verify: exit %d", code)
	}
	out, _, _ = runTool(t, env, kubectl, "__complete", "imagesync", "ver")
	if !strings.Contains(out, "verify") || !strings.Contains(out, "version") {
		t.Errorf("kubectl completion through kubectl_complete-imagesync: %q", out)
	}
}

func TestProgressOutput(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not found")
	}
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	var rules strings.Builder
	for i := range 6 {
		src.PushRandomImage(t, fmt.Sprintf("lib/app%d", i), "1", linuxAmd64, 2, 256<<10, false, int64(120+i))
		fmt.Fprintf(&rules, "%s/lib/app%d:1: %s/mirror/app%d\n", src.Host, i, dst.Host, i)
	}
	work := t.TempDir()
	images := writeFile(t, work, "images.yaml", rules.String())
	self := installAs(t, work, "imagesync")
	env := []string{"HOME=" + work, "NO_COLOR=1"}

	// Under a pseudo-terminal: the bar.
	cmdline := fmt.Sprintf("%s --images %s --no-ledger --proc 2", self, images)
	out, _, code := runTool(t, env, script, "-qec", cmdline, "/dev/null")
	if code != 0 {
		t.Fatalf("under script: exit %d", code)
	}
	if !strings.Contains(out, "\r") || !strings.Contains(out, "/6 images") || !strings.Contains(out, "%") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
	if strings.Contains(out, "\x1b[32m") {
		t.Error("NO_COLOR is set but the output has colors")
	}

	// Piped: no bar, no carriage return, one line per image.
	for i := range 6 {
		dst.DeleteManifest(t, fmt.Sprintf("mirror/app%d", i), mustDigest(t, dst, fmt.Sprintf("mirror/app%d", i)))
	}
	_, stderr, code := runTool(t, env, self, "--images", images, "--no-ledger")
	if code != 0 || strings.Contains(stderr, "\r") || strings.Contains(stderr, "images [") || strings.Count(stderr, "copied ") != 6 {
		t.Errorf("piped output: exit %d, %q", code, stderr)
	}
	// --quiet: only the summary.
	_, stderr, code = runTool(t, env, self, "--images", images, "--no-ledger", "--quiet")
	if code != 0 || strings.Contains(stderr, "skipped  ") || !strings.Contains(stderr, "6 skipped") {
		t.Errorf("--quiet: exit %d, %q", code, stderr)
	}
}

func mustDigest(t *testing.T, r *registrytest.Registry, repo string) string {
	_, _, d := r.Manifest(t, repo, "1")
	return d
}

func TestSyncJSONReport(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution2, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 500, false, 131)
	images := writeFile(t, t.TempDir(), "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[2]s/a/app\n%[1]s/lib/app:nope: %[2]s/b/app\n", src.Host, dst.Host))
	r := runCLI(t, nil, "--images", images, "-o", "json", "--retries", "0")
	var rep struct {
		Jobs []struct {
			Source, Destination, Action, Digest, Error string
			Bytes                                      int64
			Retries                                    int
		}
		Summary map[string]float64
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.stdout)
	}
	if r.code != exitSomeFail || len(rep.Jobs) != 2 || rep.Summary["copied"] != 1 || rep.Summary["failed"] != 1 {
		t.Fatalf("exit %d, report %+v", r.code, rep)
	}
	ok, bad := rep.Jobs[0], rep.Jobs[1]
	if ok.Action != "copied" || ok.Digest != d || ok.Bytes == 0 || bad.Action != "failed" || !strings.Contains(bad.Error, "tag nope not found in ") {
		t.Errorf("jobs %+v", rep.Jobs)
	}
	if !strings.Contains(r.stderr, "copied ") {
		t.Error("the per-image lines must stay on stderr")
	}
}
