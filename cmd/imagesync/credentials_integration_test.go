package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// credentialHelper puts docker-credential-NAME on PATH; it answers `get`
// with the credentials, or fails printing a secret-looking line when fail.
func credentialHelper(t *testing.T, name, user, secret string, fail bool) {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}\\n' \"$server\"\n", user, secret)
	if fail {
		script = fmt.Sprintf("#!/bin/sh\necho 'helper exploded: %s'\nexit 1\n", secret)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// trustCA puts the registry's CA into HOME/.docker/certs.d/HOST/ca.crt.
func trustCA(t *testing.T, home string, r *registrytest.Registry) {
	t.Helper()
	dir := filepath.Join(home, ".docker", "certs.d", r.Host)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "ca.crt", string(r.CAPEM))
}

func TestCredentialSources(t *testing.T) {
	// Serial: credentialHelper puts a helper on PATH with t.Setenv, which is process-wide.
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		const pw = "Corr3ct-Horse-Battery"
		src, dst := pair(t, kind, registrytest.Options{TLS: true, Htpasswd: map[string]string{"robot": pw}})
		digest, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 800, true, 31)
		dir := t.TempDir()
		home := t.TempDir()
		trustCA(t, home, dst)
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/team/app\n", src.Host, dst.Host))
		run := func(envs map[string]string, args ...string) result {
			t.Helper()
			if envs == nil {
				envs = map[string]string{}
			}
			if _, ok := envs["HOME"]; !ok {
				envs["HOME"] = home
			}
			return runCLI(t, envs, append([]string{"--images", images, "--no-ledger"}, args...)...)
		}
		ok := func(name string, r result) {
			t.Helper()
			if r.code != 0 {
				t.Fatalf("%s: exit %d", name, r.code)
			}
			assertDigest(t, dst, "team/app", "1", digest)
			dst.DeleteManifest(t, "team/app", digest) // so the next case copies again
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Fatalf("%s: the password appears in the output", name)
			}
		}

		// Nothing configured: 401, naming the registry and the auth source.
		r := run(nil)
		if r.code != exitAllFailed || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, dst.Host+"/team/app") || !strings.Contains(r.stderr, "anonymous") {
			t.Fatalf("anonymous: exit %d", r.code)
		}

		// Only docker's config.json (DOCKER_CONFIG), with an `auth` entry.
		cfg := dockerConfig(t, fmt.Sprintf(`{"auths": {"%s": {"auth": "%s"}}}`, dst.Host, basicAuth("robot", pw)))
		ok("config.json auths", run(map[string]string{"DOCKER_CONFIG": cfg}, "--debug"))
		// The same through --docker-config.
		ok("--docker-config", run(nil, "--docker-config", cfg))

		// Only a credential helper: credsStore, then credHelpers.
		credentialHelper(t, "imagesynctest", "robot", pw, false)
		ok("credsStore", run(map[string]string{"DOCKER_CONFIG": dockerConfig(t, `{"credsStore": "imagesynctest"}`)}, "--debug"))
		ok("credHelpers", run(map[string]string{"DOCKER_CONFIG": dockerConfig(t, fmt.Sprintf(`{"credHelpers": {"%s": "imagesynctest"}}`, dst.Host))}))

		// Only the auth file, with ${VAR}.
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s:\n  username: robot\n  password: ${ROBOT_PW}\n", dst.Host))
		ok("auth file", run(map[string]string{"ROBOT_PW": pw}, "--auth", auth))

		// Both: the auth file wins over config.json, either way round.
		wrongCfg := dockerConfig(t, fmt.Sprintf(`{"auths": {"%s": {"auth": "%s"}}}`, dst.Host, basicAuth("robot", "wrong-one")))
		ok("auth file over config.json", run(map[string]string{"ROBOT_PW": pw, "DOCKER_CONFIG": wrongCfg}, "--auth", auth))
		wrongAuth := writeFile(t, dir, "wrong.yaml", fmt.Sprintf("%s:\n  username: robot\n  password: not-it\n", dst.Host))
		r = run(map[string]string{"DOCKER_CONFIG": cfg}, "--auth", wrongAuth)
		if r.code != exitAllFailed || !strings.Contains(r.stderr, `entry "`+dst.Host+`"`) {
			t.Fatalf("a wrong auth file must win over a right config.json: exit %d", r.code)
		}

		// A namespace entry wins over the registry entry.
		ns := writeFile(t, dir, "ns.yaml", fmt.Sprintf("%[1]s:\n  username: robot\n  password: not-it\n%[1]s/team:\n  username: robot\n  password: ${ROBOT_PW}\n", dst.Host))
		ok("namespace entry", run(map[string]string{"ROBOT_PW": pw}, "--auth", ns))

		// A failing helper: a warning without its output, then anonymous (401).
		credentialHelper(t, "broken", "", "helper-said-"+pw, true)
		r = run(map[string]string{"DOCKER_CONFIG": dockerConfig(t, `{"credsStore": "broken"}`)})
		if r.code != exitAllFailed || !strings.Contains(r.stderr, "docker-credential-broken") || strings.Contains(r.stderr, "helper-said") {
			t.Fatalf("failing helper: exit %d", r.code)
		}
	})
}

func TestTLSTrust(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		plain, tlsReg := pair(t, kind, registrytest.Options{TLS: true})
		d1, _ := plain.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, false, 41)
		d2, _ := plain.PushRandomImage(t, "lib/app", "2", linuxAmd64, 1, 300, false, 42)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/app:1: %[2]s/tls/app\n%[1]s/lib/app:2: %[1]s/copy/app\n", plain.Host, tlsReg.Host))

		// Unknown CA: refused, saying why and what to do; `insecure: true` on
		// the plain registry does not leak to the TLS one.
		auth := writeFile(t, dir, "auth.yaml", fmt.Sprintf("%s:\n  insecure: true\n", plain.Host))
		r := runCLI(t, nil, "--images", images, "--auth", auth, "--no-ledger")
		if r.code != exitSomeFail || !strings.Contains(r.stderr, "unknown authority") || !strings.Contains(r.stderr, "certs.d/"+tlsReg.Host+"/ca.crt") {
			t.Fatalf("unknown CA: exit %d", r.code)
		}
		assertDigest(t, plain, "copy/app", "2", d2)

		// --ca-file trusts it.
		ca := writeFile(t, dir, "ca.pem", string(tlsReg.CAPEM))
		if r := runCLI(t, nil, "--images", images, "--ca-file", ca, "--no-ledger"); r.code != 0 {
			t.Fatalf("--ca-file: exit %d", r.code)
		}
		assertDigest(t, tlsReg, "tls/app", "1", d1)

		// docker's certs.d in the home folder trusts it too.
		tlsReg.DeleteManifest(t, "tls/app", d1)
		home := t.TempDir()
		trustCA(t, home, tlsReg)
		if r := runCLI(t, map[string]string{"HOME": home}, "--images", images, "--no-ledger"); r.code != 0 {
			t.Fatalf("certs.d: exit %d", r.code)
		}
		assertDigest(t, tlsReg, "tls/app", "1", d1)

		// A per-entry ca: in the auth file.
		tlsReg.DeleteManifest(t, "tls/app", d1)
		auth = writeFile(t, dir, "auth-ca.yaml", fmt.Sprintf("%s/tls:\n  ca: ca.pem\n", tlsReg.Host))
		if r := runCLI(t, nil, "--images", images, "--auth", auth, "--no-ledger"); r.code != 0 {
			t.Fatalf("auth file ca: exit %d", r.code)
		}
		assertDigest(t, tlsReg, "tls/app", "1", d1)
	})
}

// scopeSets groups token requests by their scope list.
func scopeSets(reqs []registrytest.TokenRequest) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		s := append([]string(nil), r.Scopes...)
		sort.Strings(s)
		out[strings.Join(s, " ")]++
	}
	return out
}

func TestBearerTokenOncePerScope(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		const pw = "t0ken-Pa55"
		src := registrytest.Start(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{AnonymousPull: true}})
		dst := registrytest.Start(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{Users: map[string]string{"robot": pw}}})
		var want []string
		var rules strings.Builder
		for i := range 4 {
			repo := fmt.Sprintf("lib/app%d", i)
			d, _ := src.PushRandomImage(t, repo, "1", linuxAmd64, 2, 500, true, int64(50+i))
			want = append(want, d)
			fmt.Fprintf(&rules, "%[1]s/%[3]s:1:\n  - %[2]s/x/app%[4]d\n  - %[2]s/y/app%[4]d\n", src.Host, dst.Host, repo, i)
		}
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", rules.String())
		cfg := dockerConfig(t, fmt.Sprintf(`{"auths": {"%s": {"auth": "%s"}}}`, dst.Host, basicAuth("robot", pw)))
		envs := map[string]string{"DOCKER_CONFIG": cfg}
		r := runCLI(t, envs, "--images", images, "--proc", "4", "--debug")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for i, d := range want {
			assertDigest(t, dst, fmt.Sprintf("x/app%d", i), "1", d)
			assertDigest(t, dst, fmt.Sprintf("y/app%d", i), "1", d)
		}
		for _, reg := range []*registrytest.Registry{src, dst} {
			sets := scopeSets(reg.Tokens.All())
			for s, n := range sets {
				if n != 1 {
					t.Errorf("%s: %d token requests for scope %q, want 1", reg.Host, n, s)
				}
			}
			if len(sets) == 0 {
				t.Errorf("%s: no token requests at all", reg.Host)
			}
		}
		if n := scopeSets(dst.Tokens.All())["repository:x/app0:pull,push"]; n != 1 {
			t.Errorf("push token for x/app0 requested %d times", n)
		}
		for _, tr := range append(src.Tokens.All(), dst.Tokens.All()...) {
			if tr.Token != "" && strings.Contains(r.stdout+r.stderr, tr.Token) {
				t.Fatal("a bearer token appears in the --debug output")
			}
		}
		// No-op re-run trusting the ledger: no token for the destination at all.
		dst.Tokens.Reset()
		if r := runCLI(t, envs, "--images", images, "--trust-ledger"); r.code != 0 {
			t.Fatalf("re-run exit %d", r.code)
		}
		if n := len(dst.Tokens.All()); n != 0 {
			t.Errorf("no-op re-run asked the destination's token server %d times", n)
		}
	})
}

func TestWrongPasswordLeaksNothing(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		const srcPW, wrongPW = "Src-Pa55word-xyz", "Wr0ng-Pa55word-abc"
		src := registrytest.Start(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{Users: map[string]string{"reader": srcPW}}})
		dst := registrytest.Start(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{Users: map[string]string{"robot": "the-right-one"}}})
		src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 300, true, 61)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/team/app\n", src.Host, dst.Host))
		auth := writeFile(t, dir, "auth.json", fmt.Sprintf(`{"%s": {"username": "robot", "password": "${DST_PW}"}}`, dst.Host))
		cfg := dockerConfig(t, fmt.Sprintf(`{"auths": {"%s": {"auth": "%s"}}}`, src.Host, basicAuth("reader", srcPW)))
		logFile := filepath.Join(dir, "sync.log")
		ledger := filepath.Join(dir, "ledger.jsonl")
		r := runCLI(t, map[string]string{"DST_PW": wrongPW, "DOCKER_CONFIG": cfg}, "--images", images, "--auth", auth, "--debug", "--log", logFile, "--ledger", ledger)
		if r.code != exitAllFailed && r.code != exitSomeFail {
			t.Fatalf("exit %d, want 1 or 3", r.code)
		}
		all := r.stdout + r.stderr + readFile(t, logFile) + readFile(t, ledger)
		if !strings.Contains(all, dst.Host) || !strings.Contains(all, `auth file "`+auth+`" entry "`+dst.Host+`"`) || !strings.Contains(all, "401") {
			t.Errorf("the failure does not name the registry, the auth source and the status")
		}
		secrets := []string{srcPW, wrongPW, basicAuth("reader", srcPW), basicAuth("robot", wrongPW)}
		for _, tr := range src.Tokens.All() {
			if tr.Token != "" {
				secrets = append(secrets, tr.Token)
			}
		}
		if len(secrets) == 4 {
			t.Fatal("the source issued no token: the scan below would prove little")
		}
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("a secret (%d characters) appears in stdout, stderr, the log or the ledger", len(s))
			}
		}
	})
}

// docker login against a token registry stores an identity token: the
// OAuth2 refresh-token grant must work, and the token never be printed.
func TestIdentityToken(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		const idt = "identity-Token-9f8e7d"
		src, _ := pair(t, kind, registrytest.Options{})
		dst := registrytest.Start(t, kind, registrytest.Options{Token: &registrytest.TokenAuth{IdentityTokens: map[string]string{idt: "robot"}}})
		d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 141)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/team/app\n", src.Host, dst.Host))
		cfg := dockerConfig(t, fmt.Sprintf(`{"auths": {"%s": {"identitytoken": "%s"}}}`, dst.Host, idt))
		r := runCLI(t, map[string]string{"DOCKER_CONFIG": cfg}, "--images", images, "--no-ledger", "--debug")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		assertDigest(t, dst, "team/app", "1", d)
		users := map[string]bool{}
		for _, tr := range dst.Tokens.All() {
			users[tr.User] = true
			if tr.Token != "" && strings.Contains(r.stdout+r.stderr, tr.Token) {
				t.Fatal("a bearer token appears in the output")
			}
		}
		if !users["robot"] {
			t.Errorf("no token was issued through the identity token: %v", dst.Tokens.All())
		}
		if strings.Contains(r.stdout+r.stderr, idt) {
			t.Fatal("the identity token appears in the output")
		}
	})
}

// A registry that requires a client certificate: docker's certs.d
// convention (client.cert + client.key next to ca.crt) supplies it.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{TLS: true, ClientCert: true})
	d, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 400, true, 151)
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/app:1: %s/team/app\n", src.Host, dst.Host))
	home := t.TempDir()
	trustCA(t, home, dst)
	r := runCLI(t, map[string]string{"HOME": home}, "--images", images, "--no-ledger")
	if r.code != exitAllFailed || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without a client certificate: exit %d", r.code)
	}
	certs := filepath.Join(home, ".docker", "certs.d", dst.Host)
	writeFile(t, certs, "client.cert", string(dst.ClientCertPEM))
	writeFile(t, certs, "client.key", string(dst.ClientKeyPEM))
	if r := runCLI(t, map[string]string{"HOME": home}, "--images", images, "--no-ledger"); r.code != 0 {
		t.Fatalf("with the client certificate: exit %d", r.code)
	}
	assertDigest(t, dst, "team/app", "1", d)
}
