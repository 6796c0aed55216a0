package credentials

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestGoogleServiceAccountForms(t *testing.T) {
	key := `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}`
	b64 := base64.StdEncoding.EncodeToString([]byte(key))
	tests := []struct {
		registry, user, pass string
		wantUser, wantPass   string
	}{
		{"us.gcr.io", "_oauth2_", b64, "_json_key_base64", b64}, // image-syncer's form
		{"gcr.io", "_oauth2_", b64 + "\n", "_json_key_base64", b64},
		{"europe-west1-docker.pkg.dev", "_oauth2_", b64, "_json_key_base64", b64},
		{"asia.gcr.io:443", "_oauth2_", key, "_json_key", key}, // the JSON itself
		{"us.gcr.io", "_json_key", key, "_json_key", key},      // already basic auth
		{"us.gcr.io", "_json_key_base64", b64, "_json_key_base64", b64},
		{"us.gcr.io", "oauth2accesstoken", "ya29.token", "oauth2accesstoken", "ya29.token"},
		{"us.gcr.io", "_oauth2_", "not base64!", "_oauth2_", "not base64!"},
		{"quay.io", "_oauth2_", b64, "_oauth2_", b64},            // not Google
		{"gcr.io.example.com", "_oauth2_", b64, "_oauth2_", b64}, // not Google either
	}
	for _, tc := range tests {
		u, p := googleBasicAuth(tc.registry, tc.user, tc.pass)
		if u != tc.wantUser || p != tc.wantPass {
			t.Errorf("%s %s: got user %q (password changed: %v), want %q", tc.registry, tc.user, u, p != tc.wantPass, tc.wantUser)
		}
	}

	// Through an auth file and the keychain, as a run resolves it.
	p := writeFile(t, "auth.yaml", "us.gcr.io/my-project:\n  username: _oauth2_\n  password: ${GCR_KEY}\n")
	af, err := LoadAuthFile(p, env(map[string]string{"GCR_KEY": b64}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := (&Chain{Files: []*AuthFile{af}}).Resolve(context.Background(), "us.gcr.io", "my-project/app")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := authn.Authorization(context.Background(), a.Auth)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "_json_key_base64" || cfg.Password != b64 {
		t.Errorf("resolved user %q, want _json_key_base64 with the key", cfg.Username)
	}
}
