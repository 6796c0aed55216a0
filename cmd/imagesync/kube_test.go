package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --namespace is image-syncer's default destination namespace under the
// imagesync and docker sync names, kubectl's namespace under kubectl
// imagesync; --default-namespace is the former everywhere. -n is the
// namespace flag of each name (image-syncer's under imagesync).
func TestNamespaceFlagPerPersonality(t *testing.T) {
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "127.0.0.1:1/src/app:1: \"\"\n")
	for _, tc := range []struct {
		argv0 string
		args  []string
		want  string // destination in the plan
	}{
		{argv0: "imagesync", args: []string{"--namespace", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
		{argv0: "imagesync", args: []string{"--default-namespace", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
		{argv0: "imagesync", args: []string{"-n", "ns1"}, want: "127.0.0.1:9/ns1/app:1"}, // image-syncer's -n (issue #23)
		{argv0: "docker-sync", args: []string{"-n", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
		{argv0: "docker-sync", args: []string{"--namespace", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
		{argv0: "kubectl-imagesync", args: []string{"--default-namespace", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
		// kubectl's -n/--namespace: not a destination namespace.
		{argv0: "kubectl-imagesync", args: []string{"--namespace", "kube"}, want: "127.0.0.1:9/src/app:1"},
		{argv0: "kubectl-imagesync", args: []string{"-n", "kube", "--default-namespace", "ns1"}, want: "127.0.0.1:9/ns1/app:1"},
	} {
		args := append([]string{"plan", "--images", images, "--registry", "127.0.0.1:9", "--retries", "0", "--no-ledger", "-o", "json"}, tc.args...)
		if tc.argv0 == "docker-sync" {
			args = append([]string{"sync"}, args...) // docker runs the plugin with its name first
		}
		// In parallel: each plan spends its ~2 s waiting on the unreachable
		// registries' retried pings.
		t.Run(tc.argv0+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runAs(t, tc.argv0, nil, args...)
			if r.code == exitUsage || !strings.Contains(r.stdout, `"destination": "`+tc.want+`"`) {
				t.Errorf("%s %v: exit %d, want destination %s in\n%s%s", tc.argv0, tc.args, r.code, tc.want, r.stdout, r.stderr)
			}
		})
	}
	// Completion offers each name where it applies (kubectl runs kubectl_complete-imagesync).
	if got := completions(t, "/x/kubectl-imagesync", "plan", "--names"); strings.Join(got, " ") != "--namespace :4" {
		t.Errorf("kubectl imagesync plan --names completes to %q", got)
	}
	if got := completions(t, "imagesync", "plan", "--kube-n"); strings.Join(got, " ") != "--kube-namespace :4" {
		t.Errorf("imagesync plan --kube-n completes to %q", got)
	}
}

// TestJobDefaultImage: a release build's pods run the release's own image;
// any other build has none and requires --image (exit 2, naming the flag),
// so no pod pulls a tag that was never published.
func TestJobDefaultImage(t *testing.T) {
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "127.0.0.1:1/src/app:1: 127.0.0.1:2/dst/app\n")
	args := []string{"job", "--images", images, "--shards", "2", "--kube-namespace", "mirror", "--kubeconfig", filepath.Join(dir, "none")}

	r := runCLI(t, nil, args...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--image") || !strings.Contains(r.stderr, "not a release") || r.stdout != "" {
		t.Errorf("job without --image in a build that is not a release: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	r = runCLI(t, nil, append(args, "--image", "registry.example/tools/imagesync:1")...)
	if r.code != 0 || !strings.Contains(r.stdout, "image: registry.example/tools/imagesync:1\n") {
		t.Errorf("job --image: exit %d\n%s", r.code, r.stdout)
	}

	// As goreleaser links it (-X main.releaseImage=…).
	defer func(v string) { releaseImage = v }(releaseImage)
	releaseImage = "ghcr.io/imagesync/imagesync:1.2.3"
	r = runCLI(t, nil, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "image: ghcr.io/imagesync/imagesync:1.2.3\n") {
		t.Errorf("job in a release build: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, nil, append(args, "--image", "mirror.example/imagesync:1.2.3")...)
	if r.code != 0 || !strings.Contains(r.stdout, "image: mirror.example/imagesync:1.2.3\n") || strings.Contains(r.stdout, "ghcr.io") {
		t.Errorf("job --image in a release build: exit %d\n%s", r.code, r.stdout)
	}
}
