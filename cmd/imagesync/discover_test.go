package main

import (
	"strings"
	"testing"
)

// Docker Hub never lists its repositories: a wildcard source there fails
// at once with a message that says so, without a request; plain mistakes
// in a wildcard source are usage errors naming the argument.
func TestDiscoveryRefusedUpFront(t *testing.T) {
	r := runCLI(t, nil, "plan", "docker.io/library/*", "127.0.0.1:1/mirror", "--timeout", "1s")
	if r.code == exitOK || !strings.Contains(r.stdout+r.stderr, "(Docker Hub) does not list its repositories") || strings.Contains(r.stdout+r.stderr, "not reachable") {
		t.Errorf("docker.io wildcard: exit %d", r.code)
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"sync", "team/*", "127.0.0.1:1/mirror"}},
		{[]string{"sync", "reg.example.com/team/*", "127.0.0.1:1/mirror:v1"}},
		{[]string{"sync", "reg.example.com/Team/*", "127.0.0.1:1/mirror"}},
	} {
		if r := runCLI(t, nil, tc.args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, r.code, exitUsage)
		}
	}
}
