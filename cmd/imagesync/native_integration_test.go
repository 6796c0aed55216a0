package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestConfigRegistries: registries: gives a TLS destination its CA and
// credentials from environment variables, and a second destination the
// credentials of an auth-file entry; no secret reaches any output.
func TestConfigRegistries(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	tlsDst := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{TLS: true, Htpasswd: map[string]string{"envuser": "env-s3cret-1"}})
	plainDst := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{Htpasswd: map[string]string{"fileuser": "file-s3cret-2"}})
	want, _ := src.PushRandomImage(t, "lib/app", "1.0", registrytest.Platform{OS: "linux", Arch: "amd64"}, 2, 1024, true, 5)

	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", string(tlsDst.CAPEM))
	writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s/team:\n  username: fileuser\n  password: file-s3cret-2\n", plainDst.Host))
	cfg := writeFile(t, dir, "imagesync.yaml", fmt.Sprintf(`auth-file: auth.yaml
registries:
  %[1]s:
    ca: ./ca.crt
    rate: 50
    max-conns: 2
    auth: {username-env: DST_USER, password-env: DST_PASS}
  %[2]s/team:
    auth: {entry: %[2]s/team}
sync:
  - from: %[3]s/lib/app:1.0
    to: [%[1]s/mirror/app, %[2]s/team/app]
`, tlsDst.Host, plainDst.Host, src.Host))
	envs := map[string]string{"DST_USER": "envuser", "DST_PASS": "env-s3cret-1"}
	r := runCLI(t, envs, "sync", "-f", cfg, "--debug")
	if r.code != 0 {
		t.Fatalf("sync exit %d", r.code)
	}
	assertDigest(t, tlsDst, "mirror/app", "1.0", want)
	assertDigest(t, plainDst, "team/app", "1.0", want)
	for _, secret := range []string{"env-s3cret-1", "file-s3cret-2"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("the secret %q appears in the output", secret)
		}
	}
	// Without the variables the file is a configuration error, before any request.
	tlsDst.Log.Reset()
	if r := runCLI(t, nil, "sync", "-f", cfg); r.code != exitUsage || !strings.Contains(r.stderr, "DST_USER is not set") {
		t.Errorf("unset variable: exit %d", r.code)
	}
	if n := len(tlsDst.Log.All()); n != 0 {
		t.Errorf("%d requests with a broken config", n)
	}
}

// TestConfigSkipInvalidEntries: with --skip-invalid-rules a config file's
// broken sync entries are set aside, the others run, and the exit code is 1.
func TestConfigSkipInvalidEntries(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test: needs real registry servers")
	}
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	want, _ := src.PushRandomImage(t, "lib/app", "1.0", registrytest.Platform{OS: "linux", Arch: "amd64"}, 1, 256, true, 6)
	cfg := writeFile(t, t.TempDir(), "imagesync.yaml", fmt.Sprintf(`sync:
  - from: %[1]s/lib/app:1.0
    to: %[2]s/good/app
  - from: %[1]s/lib/app
    to: %[2]s/bad/app
    tags: {semver: 'not a constraint'}
`, src.Host, dst.Host))
	if r := runCLI(t, nil, "sync", "-f", cfg); r.code != exitUsage {
		t.Fatalf("strict: exit %d, want %d", r.code, exitUsage)
	}
	r := runCLI(t, nil, "sync", "-f", cfg, "--skip-invalid-rules")
	if r.code != exitSomeFail || !strings.Contains(r.stderr, `key "sync[1].tags.semver"`) {
		t.Fatalf("--skip-invalid-rules: exit %d, want %d naming sync[1]", r.code, exitSomeFail)
	}
	assertDigest(t, dst, "good/app", "1.0", want)
	if tags := dst.Tags(t, "bad/app"); len(tags) != 0 {
		t.Errorf("the set-aside entry ran: %v", tags)
	}
	// A file error that is no entry's still stops everything.
	bad := writeFile(t, t.TempDir(), "imagesync.yaml", strings.Replace(readFile(t, cfg), "sync:", "defaults: {proc: 0}\nsync:", 1))
	if r := runCLI(t, nil, "sync", "-f", bad, "--skip-invalid-rules"); r.code != exitUsage {
		t.Errorf("defaults error with --skip-invalid-rules: exit %d, want %d", r.code, exitUsage)
	}
}
