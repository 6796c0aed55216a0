package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedbatchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/imagesync/imagesync/internal/kubetest"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/report"
)

// Tests of issue #22: the image strings of a cluster's pod specs are
// written by whoever may create a pod. Two registries' library/nginx go to
// two paths by default (the source registry stays in the mirror path); a
// bad reference is skipped with a warning naming namespace, pod and
// container, and the rest is mirrored (exit 1); --flat keeps the old
// layout and skips images of two registries that would share a path.
func TestFromClusterUntrustedPods(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	c := kubetest.Start(t, kubetest.Options{})
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	other := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	ctx := context.Background()
	ok := must(t)
	core := typedcorev1.NewForConfigOrDie(c.RESTConfig())

	official, _ := src.PushRandomImage(t, "library/nginx", "1.27", linuxAmd64, 1, 200, false, 2201)
	planted, _ := other.PushRandomImage(t, "library/nginx", "1.27", linuxAmd64, 1, 200, false, 2202)
	app, _ := src.PushRandomImage(t, "team/app", "1", linuxAmd64, 1, 200, false, 2203)
	target := dst.Host + "/mirror"

	ok(core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}))
	ok(core.ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}))
	mk := func(name string, containers map[string]string) {
		var spec corev1.PodSpec
		for _, n := range []string{"app", "side", "trav", "web"} {
			if img, ok := containers[n]; ok {
				spec.Containers = append(spec.Containers, corev1.Container{Name: n, Image: img})
			}
		}
		ok(core.Pods("team").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}))
	}
	mk("good", map[string]string{"web": src.Host + "/library/nginx:1.27", "app": src.Host + "/team/app:1"})
	mk("evil", map[string]string{"app": "Evil/Upper:1", "trav": "a/../../b:1", "side": other.Host + "/library/nginx:1.27"})

	// Default: each registry under its own path; the bad ones skipped.
	r := runCLI(t, nil, "plan", "--from-cluster", "--kubeconfig", c.Kubeconfig, "--kube-namespace", "team", "--to", target, "-o", "json")
	if r.code != exitSomeFail {
		t.Errorf("plan: exit %d, want %d (images skipped)", r.code, exitSomeFail)
	}
	var p report.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	host := func(h string) string { return strings.ReplaceAll(h, ":", "_") }
	want := map[string]string{
		src.Host + "/library/nginx:1.27 → " + target + "/" + host(src.Host) + "/library/nginx:1.27":     official,
		other.Host + "/library/nginx:1.27 → " + target + "/" + host(other.Host) + "/library/nginx:1.27": planted,
		src.Host + "/team/app:1 → " + target + "/" + host(src.Host) + "/team/app:1":                     app,
	}
	got := map[string]string{}
	for _, j := range p.Jobs {
		got[j.Source+" → "+j.Destination] = j.Digest
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plan jobs:\n%v\nwant\n%v", got, want)
	}
	checkSkipped := func(t *testing.T, skipped []report.SkippedImage, count int, want ...string) {
		t.Helper()
		var lines []string
		for _, s := range skipped {
			lines = append(lines, fmt.Sprintf("%s %s/%s %s %s", s.Kind, s.Namespace, s.Name, s.Container, s.Image))
		}
		want = append([]string(nil), want...)
		sort.Strings(want) // reported sorted by where each was found
		if len(skipped) != count || fmt.Sprint(lines) != fmt.Sprint(want) {
			t.Errorf("skipped images %d:\n%v\nwant\n%v", count, lines, want)
		}
	}
	checkSkipped(t, p.SkippedImages, 2, "pod team/evil app Evil/Upper:1", "pod team/evil trav a/../../b:1")
	if p.Summary.SkippedImages != 2 {
		t.Errorf("summary skippedImages %d, want 2", p.Summary.SkippedImages)
	}
	for _, s := range []string{"pod team/evil, container app", "pod team/evil, container trav", "2 image reference(s) of the cluster were skipped"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}

	// sync mirrors the rest, digests exact, and says why it exits 1.
	r = runCLI(t, nil, "sync", "--from-cluster", "--kubeconfig", c.Kubeconfig, "--kube-namespace", "team", "--to", target, "-o", "json")
	if r.code != exitSomeFail {
		t.Errorf("sync: exit %d, want %d", r.code, exitSomeFail)
	}
	var rep report.SyncReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Summary.SkippedImages != 2 || len(rep.SkippedImages) != 2 || rep.Summary.Copied != 3 {
		t.Errorf("sync report: %d skipped (%d listed), %d copied; want 2 and 3", rep.Summary.SkippedImages, len(rep.SkippedImages), rep.Summary.Copied)
	}
	assertDigest(t, dst, "mirror/"+host(src.Host)+"/library/nginx", "1.27", official)
	assertDigest(t, dst, "mirror/"+host(other.Host)+"/library/nginx", "1.27", planted)
	assertDigest(t, dst, "mirror/"+host(src.Host)+"/team/app", "1", app)

	// --flat: the old layout; the two nginx images would share a path, so
	// neither goes there; the rest does.
	r = runCLI(t, nil, "sync", "--from-cluster", "--flat", "--kubeconfig", c.Kubeconfig, "--kube-namespace", "team", "--to", target, "-o", "json")
	if r.code != exitSomeFail {
		t.Errorf("sync --flat: exit %d, want %d", r.code, exitSomeFail)
	}
	rep = report.SyncReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	checkSkipped(t, rep.SkippedImages, 4, "pod team/evil app Evil/Upper:1", "pod team/evil trav a/../../b:1",
		"pod team/good web "+src.Host+"/library/nginx:1.27", "pod team/evil side "+other.Host+"/library/nginx:1.27")
	if !strings.Contains(r.stderr, "pod team/evil, container side") || !strings.Contains(r.stderr, "--flat puts it at "+target+"/library/nginx") {
		t.Error("the conflict is not explained on stderr")
	}
	if tags := dst.Tags(t, "mirror/library/nginx"); len(tags) != 0 {
		t.Errorf("the contested flat path got tags %v", tags)
	}
	assertDigest(t, dst, "mirror/team/app", "1", app)
}

// `kubectl imagesync job` refuses a bad namespace, schedule or Secret
// name before printing or applying anything (exit 2, the rule named);
// the API server holds nothing afterwards.
func TestJobFlagsValidated(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	c := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	core := typedcorev1.NewForConfigOrDie(c.RESTConfig())
	batch := typedbatchv1.NewForConfigOrDie(c.RESTConfig())
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "x.io/a/b:1: y.io/a/b\n")
	base := []string{"job", "--images", images, "--kubeconfig", c.Kubeconfig, "--image", "registry.example/imagesync:test"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"namespace", []string{"-n", "Team_A"}, `-n/--namespace "Team_A": want lower-case letters`},
		{"namespace injection", []string{"-n", "a\nkind: Secret"}, `-n/--namespace "a\nkind: Secret"`},
		{"schedule fields", []string{"-n", "team", "--schedule", "0 3 * *"}, `--schedule "0 3 * *": want 5 fields`},
		{"schedule value", []string{"-n", "team", "--schedule", "0 25 * * *"}, `--schedule "0 25 * * *": hour "25"`},
		{"schedule injection", []string{"-n", "team", "--schedule", "0 3 * * *\nsuspend: true"}, "line breaks"},
		{"secret", []string{"-n", "team", "--docker-config-secret", "Reg/Cred"}, `--docker-config-secret "Reg/Cred": want lower-case`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, apply := range []bool{false, true} {
				args := append(append([]string{}, base...), tc.args...)
				if apply {
					args = append(args, "--apply")
				}
				r := runAs(t, "kubectl-imagesync", nil, args...)
				if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
					t.Errorf("apply=%v: exit %d, stdout %q; want %d, nothing printed and an error with %q", apply, r.code, r.stdout, exitUsage, tc.want)
				}
			}
		})
	}
	// Nothing reached the API server.
	cms, err := core.ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=imagesync"})
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := batch.Jobs("").List(ctx, metav1.ListOptions{})
	cjs, _ := batch.CronJobs("").List(ctx, metav1.ListOptions{})
	if len(cms.Items)+len(jobs.Items)+len(cjs.Items) != 0 {
		t.Errorf("objects were created: %d ConfigMaps, %d Jobs, %d CronJobs", len(cms.Items), len(jobs.Items), len(cjs.Items))
	}
	// A valid run still prints.
	r := runAs(t, "kubectl-imagesync", nil, append(base, "-n", "team", "--schedule", "*/30 1-5 * * MON-FRI", "--docker-config-secret", "reg.cred")...)
	if r.code != 0 || !strings.Contains(r.stdout, "kind: CronJob") {
		t.Errorf("valid flags: exit %d", r.code)
	}
}
