package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestMatchLongestPrefix(t *testing.T) {
	p := writeFile(t, "auth.json", `{
  "quay.io": {"username": "reg", "password": "p1"},
  "quay.io/coreos": {"username": "ns", "password": "p2"},
  "docker.io/libr": {"username": "partial", "password": "p3"},
  "docker.io/library/nginx": {"username": "whole", "password": "p4"},
  "https://index.docker.io/v1/": {"username": "hub", "password": "p5"},
  "127.0.0.1:5000": {"insecure": true}
}`)
	af, err := LoadAuthFile(p, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		registry, repo string
		wantUser       string
		wantInsecure   bool
		wantSource     string
	}{
		{"quay.io", "coreos/etcd", "ns", false, `"quay.io/coreos"`},
		{"quay.io", "coreosx/etcd", "reg", false, `"quay.io"`},
		{"quay.io", "other/app", "reg", false, `"quay.io"`},
		{"docker.io", "library/nginx", "whole", false, `"docker.io/library/nginx"`},
		{"index.docker.io", "library/alpine", "hub", false, `"https://index.docker.io/v1/"`},
		{"docker.io", "library/redis", "hub", false, ""},
		{"127.0.0.1:5000", "a/b", "", true, "anonymous"},
		{"ghcr.io", "a/b", "", false, "anonymous"},
	}
	kc := &Chain{Files: []*AuthFile{af}}
	for _, tc := range tests {
		a, err := kc.Resolve(context.Background(), tc.registry, tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := authn.Authorization(context.Background(), a.Auth)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.wantUser || a.Insecure != tc.wantInsecure || !strings.Contains(a.Source, tc.wantSource) {
			t.Errorf("%s/%s: user=%q insecure=%v source=%q; want %q %v %q", tc.registry, tc.repo, cfg.Username, a.Insecure, a.Source, tc.wantUser, tc.wantInsecure, tc.wantSource)
		}
		if strings.Contains(a.Source, "p1") || strings.Contains(a.Source, "p2") {
			t.Errorf("source leaks a password: %q", a.Source)
		}
	}
}

func TestAuthFileErrors(t *testing.T) {
	tests := []struct {
		name, file, content string
		env                 map[string]string
		want                []string
	}{
		{"unset var", "a.yaml", "quay.io:\n  username: u\n  password: ${QUAY_PW}\n", nil, []string{"a.yaml:3", `key "quay.io"`, `"QUAY_PW" is not set`}},
		{"not a map", "a.json", `["x"]`, nil, []string{"a.json", "must be a map"}},
		{"entry not map", "a.json", `{"quay.io": "x"}`, nil, []string{"a.json:1", `key "quay.io"`, "value must be a map"}},
		{"insecure not bool", "a.yaml", "quay.io:\n  insecure: yes please\n", nil, []string{"a.yaml:2", "insecure must be true or false"}},
		{"numeric password", "a.yaml", "quay.io:\n  username: u\n  password: 1234\n", nil, []string{"a.yaml:3", "password must be a string"}},
		{"alias collision", "a.yaml", "docker.io:\n  username: a\nindex.docker.io:\n  username: b\n", nil, []string{"a.yaml:3", "same registry/namespace as the key at line 1"}},
		{"duplicate key", "a.json", "{\"quay.io\": {},\n \"quay.io\": {}}", nil, []string{"a.json:2", "duplicate"}},
		{"bad extension", "a.txt", `{}`, nil, []string{"a.txt", "extension"}},
		{"two errors at once", "a.yaml", "a.io:\n  password: $X\nb.io:\n  password: $Y\n", nil, []string{`"X" is not set`, `"Y" is not set`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.file, tc.content)
			_, err := LoadAuthFile(p, env(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAuthFileEnvAndWarnings(t *testing.T) {
	p := writeFile(t, "auth.yml", "harbor.example.com/proj:\n  username: ${H_USER}\n  password: $H_PW\n  token: x\n")
	af, err := LoadAuthFile(p, env(map[string]string{"H_USER": "robot$proj", "H_PW": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := af.Match("harbor.example.com", "proj/app")
	if !ok || e.Username != "robot$proj" || e.Password != "pw" {
		t.Fatalf("got %+v %v", e, ok)
	}
	if len(af.Warnings) != 1 || !strings.Contains(af.Warnings[0], `unknown field "token"`) {
		t.Fatalf("warnings = %v", af.Warnings)
	}
	if got := af.Secrets(); len(got) != 1 || got[0] != "pw" {
		t.Fatalf("secrets = %v", got)
	}
}

func TestRedactor(t *testing.T) {
	var b strings.Builder
	set := &SecretSet{}
	set.Add("hunter22", "pw")
	r := NewRedactor(&b, set)
	if _, err := r.Write([]byte("login with hunter22 failed; pw stays\n")); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "login with *** failed; pw stays\n" {
		t.Fatalf("got %q", got)
	}
	set.Add("learnt-later")
	b.Reset()
	r.Write([]byte("token learnt-later\n"))
	if got := b.String(); got != "token ***\n" {
		t.Fatalf("a secret learnt after the redactor was made is not scrubbed: %q", got)
	}
}

func writeFileIn(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
