package kube

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/imagesync/imagesync/sync/report"
)

const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImage(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "nginx", want: "docker.io/library/nginx:latest"},
		{in: "nginx:1.27", want: "docker.io/library/nginx:1.27"},
		{in: "bitnami/redis:7", want: "docker.io/bitnami/redis:7"},
		{in: "index.docker.io/library/alpine:3", want: "docker.io/library/alpine:3"},
		{in: "registry-1.docker.io/alpine:3", want: "docker.io/library/alpine:3"},
		{in: "registry.hub.docker.com/alpine:3", want: "docker.io/library/alpine:3"}, // an alias credentials knew, the cluster's images did not
		{in: "Registry.Example.com/team/app:1", want: "registry.example.com/team/app:1"},
		{in: "registry.k8s.io/pause:3.10", want: "registry.k8s.io/pause:3.10"},
		{in: "localhost/app", want: "localhost/app:latest"},
		{in: "127.0.0.1:5000/team/app:v1", want: "127.0.0.1:5000/team/app:v1"},
		{in: "quay.io/coreos/etcd@" + dg, want: "quay.io/coreos/etcd@" + dg},
		{in: "quay.io/coreos/etcd:v3@" + dg, want: "quay.io/coreos/etcd:v3@" + dg},
		{in: "", err: true},
		{in: "nginx@sha256:short", err: true},
		{in: "Upper/Case", err: true},
	} {
		got, err := ParseImage(tc.in)
		if (err != nil) != tc.err || (!tc.err && got.Name() != tc.want) {
			t.Errorf("ParseImage(%q) = %q, %v; want %q, error %v", tc.in, got.Name(), err, tc.want, tc.err)
		}
	}
}

// A pod's imageID gives its tag a digest only when it is a repository
// digest of the same repository.
func TestCollectorDigests(t *testing.T) {
	c := collector{images: map[string]*Image{}, digests: map[string]map[string]bool{}}
	p := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers:      []corev1.Container{{Name: "init", Image: "busybox:1"}},
			Containers:          []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "side", Image: "envoy:1"}, {Name: "other", Image: "redis:7"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "ghcr.io/x/debug:1"}}},
		},
		Status: corev1.PodStatus{
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ImageID: "docker.io/library/busybox@" + dg}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "app", ImageID: "docker-pullable://nginx@" + dg},
				{Name: "side", ImageID: dg},                                // an image ID, not a repository digest
				{Name: "other", ImageID: "docker.io/library/valkey@" + dg}, // another repository
			},
		},
	}
	c.spec(Container{Kind: "pod", Namespace: "ns", Name: "p"}, &p.Spec)
	c.status(p)
	got := map[string]bool{}
	for _, img := range c.result() {
		got[img.Name()] = true
	}
	for _, want := range []string{"docker.io/library/busybox:1@" + dg, "docker.io/library/nginx:1.27@" + dg, "docker.io/library/envoy:1", "docker.io/library/redis:7", "ghcr.io/x/debug:1"} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("got %v", got)
	}
}

func TestJobObjects(t *testing.T) {
	spec := JobSpec{Name: "mirror", Namespace: "ops", Image: "img:1", Shards: 5, BackoffLimitPerIndex: 3,
		Files: []RunFile{{Flag: "-f", Name: "imagesync.yaml", Data: []byte("sync: []\n")}}, DockerConfigSecret: "regcred"}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	objs := spec.Objects()
	if len(objs) != 5 {
		t.Fatalf("%d objects", len(objs))
	}
	job, ok := objs[4].(*batchv1.Job)
	if !ok {
		t.Fatalf("last object is %T", objs[4])
	}
	js := job.Spec
	if *js.CompletionMode != batchv1.IndexedCompletion || *js.Completions != 5 || *js.Parallelism != 5 || *js.BackoffLimitPerIndex != 3 {
		t.Errorf("job spec %+v", js)
	}
	ct := js.Template.Spec.Containers[0]
	args := strings.Join(ct.Args, " ")
	for _, want := range []string{"sync -f /etc/imagesync/config/imagesync.yaml", "--shards 5", "--kube-report mirror"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if !*ct.SecurityContext.ReadOnlyRootFilesystem || *ct.SecurityContext.AllowPrivilegeEscalation || !*js.Template.Spec.SecurityContext.RunAsNonRoot {
		t.Errorf("security context %+v %+v", ct.SecurityContext, js.Template.Spec.SecurityContext)
	}
	role := objs[2].(*rbacv1.Role)
	if names := role.Rules[1].ResourceNames; len(names) != 5 || names[4] != "mirror-shard-4" {
		t.Errorf("role resource names %v", names)
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, objs); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n---\n") != 4 || !strings.Contains(buf.String(), "secretName: regcred") {
		t.Errorf("YAML:\n%s", buf.String())
	}

	spec.Schedule = "0 3 * * *"
	cj, ok := spec.Objects()[4].(*batchv1.CronJob)
	if !ok || cj.Spec.Schedule != "0 3 * * *" || *cj.Spec.JobTemplate.Spec.Completions != 5 || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob %+v", cj)
	}

	for _, bad := range []JobSpec{
		{Name: "Mirror", Shards: 1, Files: spec.Files},
		{Name: "m", Shards: 0, Files: spec.Files},
		{Name: "m", Shards: 1},
		{Name: strings.Repeat("a", 53), Shards: 1, Files: spec.Files},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestShardReportKeepsFailedOnly(t *testing.T) {
	rep := report.SyncReport{}
	for i := range maxFailedListed + 10 {
		rep.Jobs = append(rep.Jobs, report.SyncJob{Source: fmt.Sprint("s", i), Action: "failed"})
	}
	rep.Jobs = append(rep.Jobs, report.SyncJob{Source: "ok", Action: "copied"})
	r := NewShardReport("j", 1, 3, rep)
	if r.Jobs != maxFailedListed+11 || len(r.Report.Jobs) != maxFailedListed || r.FailedOmitted != 10 {
		t.Errorf("jobs %d listed %d omitted %d", r.Jobs, len(r.Report.Jobs), r.FailedOmitted)
	}
}

func TestJobMetricsAnnotations(t *testing.T) {
	spec := JobSpec{Name: "mirror", Namespace: "ops", Image: "img:1", Shards: 2,
		Files: []RunFile{{Flag: "-f", Name: "imagesync.yaml", Data: []byte("sync: []\n")}}, MetricsPort: 9090}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	pod := spec.Objects()[4].(*batchv1.Job).Spec.Template
	for k, want := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"} {
		if got := pod.Annotations[k]; got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
	ct := pod.Spec.Containers[0]
	if args := strings.Join(ct.Args, " "); !strings.Contains(args, "--metrics-addr :9090") {
		t.Errorf("args %q lack --metrics-addr :9090", args)
	}
	if len(ct.Ports) != 1 || ct.Ports[0].ContainerPort != 9090 || ct.Ports[0].Name != "metrics" {
		t.Errorf("ports %+v", ct.Ports)
	}
	spec.MetricsPort = 0
	if pod := spec.Objects()[4].(*batchv1.Job).Spec.Template; len(pod.Annotations) != 0 || len(pod.Spec.Containers[0].Ports) != 0 {
		t.Errorf("no --metrics-port: annotations %v, ports %v", pod.Annotations, pod.Spec.Containers[0].Ports)
	}
	spec.MetricsPort = 70000
	if err := spec.Validate(); err == nil {
		t.Error("--metrics-port 70000: no error")
	}
}
