package credentials

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestDockerConfigKeys(t *testing.T) {
	dir := t.TempDir()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := `{"auths": {
  "https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpass") + `"},
  "https://registry.example.com": {"auth": "` + b64("reg:regpass") + `"},
  "ghcr.io": {"identitytoken": "idt-secret-123"}
}}`
	writeFileIn(t, dir, "config.json", cfg)
	secrets := &SecretSet{}
	d := &DockerConfig{Dir: dir, Secrets: secrets}
	for _, tc := range []struct {
		registry, user, pass, identity string
	}{
		{"docker.io", "hubuser", "hubpass", ""},
		{"index.docker.io", "hubuser", "hubpass", ""},
		{"registry-1.docker.io", "hubuser", "hubpass", ""},
		{"registry.hub.docker.com", "hubuser", "hubpass", ""},
		{"registry.example.com", "reg", "regpass", ""},
		{"ghcr.io", "", "", "idt-secret-123"},
		{"quay.io", "", "", ""},
	} {
		a, err := d.Resolve(context.Background(), tc.registry, "x/y")
		if err != nil {
			t.Fatal(err)
		}
		ac, _ := authn.Authorization(context.Background(), a.Auth)
		if ac.Username != tc.user || ac.Password != tc.pass || ac.IdentityToken != tc.identity {
			t.Errorf("%s: got %q/%q/%q", tc.registry, ac.Username, ac.Password, ac.IdentityToken)
		}
		if tc.user == "" && tc.identity == "" && !strings.HasPrefix(a.Source, "anonymous") {
			t.Errorf("%s: source %q", tc.registry, a.Source)
		}
	}
	got := strings.Join(secrets.List(), " ")
	for _, s := range []string{"hubpass", "regpass", "idt-secret-123"} {
		if !strings.Contains(got, s) {
			t.Errorf("secret %q not registered for redaction", s)
		}
	}
	// A malformed config.json is an error naming it.
	bad := t.TempDir()
	writeFileIn(t, bad, "config.json", "{not json")
	if _, err := (&DockerConfig{Dir: bad}).Resolve(context.Background(), "quay.io", "a/b"); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "config.json")) {
		t.Errorf("malformed config: %v", err)
	}
}

func TestHelperGistDropsOutput(t *testing.T) {
	err := errString("error getting credentials - err: exit status 1, out: `token=hunter2`")
	if g := helperGist(err); strings.Contains(g, "hunter2") || !strings.Contains(g, "exit status 1") {
		t.Fatalf("gist %q", g)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
