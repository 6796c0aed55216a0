package dockerhub

import "testing"

// The union of what the four copies of this table did before (credentials,
// rules, the config file's host limits, the cluster's images): every alias
// any of them knew means Docker Hub everywhere, hosts compare in lower case,
// and a one-component path is an official image.
func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker.io", "docker.io"},
		{"Docker.IO", "docker.io"},
		{"index.docker.io", "docker.io"},
		{"registry-1.docker.io", "docker.io"},
		{"registry.hub.docker.com", "docker.io"},
		{"REGISTRY.HUB.DOCKER.COM", "docker.io"},
		{"hub.docker.com", "hub.docker.com"}, // the web site, not a registry
		{"quay.io", "quay.io"},
		{"Harbor.Example.com:5000", "harbor.example.com:5000"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"", ""},
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got, want := Is(tc.in), tc.want == Registry; got != want {
			t.Errorf("Is(%q) = %v, want %v", tc.in, got, want)
		}
	}
}

func TestRepository(t *testing.T) {
	for _, tc := range []struct{ reg, repo, want string }{
		{"docker.io", "nginx", "library/nginx"},
		{"index.docker.io", "nginx", "library/nginx"},
		{"registry-1.docker.io", "nginx", "library/nginx"},
		{"registry.hub.docker.com", "nginx", "library/nginx"},
		{"docker.io", "library/nginx", "library/nginx"},
		{"docker.io", "bitnami/redis", "bitnami/redis"},
		{"docker.io", "", ""},
		{"quay.io", "nginx", "nginx"},
	} {
		if got := Repository(tc.reg, tc.repo); got != tc.want {
			t.Errorf("Repository(%q, %q) = %q, want %q", tc.reg, tc.repo, got, tc.want)
		}
	}
}

func TestAPIHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker.io", "index.docker.io"},
		{"registry-1.docker.io", "index.docker.io"},
		{"registry.hub.docker.com", "index.docker.io"},
		{"Quay.io", "quay.io"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
	} {
		if got := APIHost(tc.in); got != tc.want {
			t.Errorf("APIHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
