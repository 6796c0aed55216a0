package kube_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	typedbatchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/imagesync/imagesync/internal/imagetest"
	"github.com/imagesync/imagesync/internal/kubetest"
	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/kube"
)

// TestJobRealPods runs `kubectl imagesync job` on a real node: a kubelet with
// containerd and runc pulls the image the release would publish (assembled
// from the freshly built static binary, in a loopback registry) and runs
// three shards' pods as the Job says (non-root, read-only root, no
// capabilities, the rules' ConfigMap, the registry Secret and the service
// account token mounted by the kubelet). The source registry wants a
// password, which only the Secret holds. Every digest arrives exactly; each
// shard writes its ConfigMap through its service account, which may write
// nothing else; `status` adds them up. A second Job with an unreachable rule
// is reported failed; a CronJob running every minute runs once and is
// cleaned up with its Jobs and pods.
//
// The pods use the host's network (loopback registries and the API server
// are on 127.0.0.1; there is no kube-proxy for the kubernetes Service's
// address), which the test patches into the Job job prints before applying
// it with the same code as job --apply.
func TestJobRealPods(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// The node's registry: the pause image and imagesync's.
	nodeReg := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	dir := t.TempDir()
	bin := imagetest.Binary(t, dir, runtime.GOARCH)
	idx, err := imagetest.Build(imagetest.Spec{Binaries: map[string]string{runtime.GOARCH: bin},
		CABundle: imagetest.SystemRoots(t), Version: "imagetest", Revision: imagetest.TestCommit})
	if err != nil {
		t.Fatal(err)
	}
	image := nodeReg.Host + "/imagesync/imagesync:test"
	imageDigest, err := imagetest.Push(ctx, image, idx)
	if err != nil {
		t.Fatal(err)
	}
	pause := nodeReg.Host + "/pause:test"
	if _, err := imagetest.PushImage(ctx, pause, imagetest.Pause(t, dir)); err != nil {
		t.Fatal(err)
	}
	c := kubetest.Start(t, kubetest.Options{Workloads: true, Node: &kubetest.Node{SandboxImage: pause, PlainHTTP: []string{nodeReg.Host}}})
	cfg := c.RESTConfig()
	core := typedcorev1.NewForConfigOrDie(cfg)
	batch := typedbatchv1.NewForConfigOrDie(cfg)
	kubectl := pluginRunner(t, dir, bin, c.Kubeconfig)

	const user, password = "puller", "s3cret-only-in-the-Secret"
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{Htpasswd: map[string]string{user: password}})
	dst := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	want := map[string]string{}
	var rules strings.Builder
	for r := range 4 {
		for tag := range 2 {
			d, _ := src.PushRandomImage(t, fmt.Sprintf("team/svc%d", r), fmt.Sprintf("v%d", tag), registrytest.Platform{OS: "linux", Arch: "amd64"}, 2, 2000, false, int64(2600+10*r+tag))
			want[fmt.Sprintf("mirror/svc%d:v%d", r, tag)] = d
		}
		fmt.Fprintf(&rules, "%s/team/svc%d: %s/mirror/svc%d\n", src.Host, r, dst.Host, r)
	}
	images := filepath.Join(dir, "images.yaml")
	must(t, os.WriteFile(images, []byte(rules.String()), 0o600))

	ns := "mirror"
	_, err = core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(t, err)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	_, err = core.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + src.Host + `":{"auth":"` + auth + `"}}}`)}}, metav1.CreateOptions{})
	must(t, err)

	// 1. Three shards on the real node.
	out := kubectl(t, 0, "imagesync", "job", "--images", images, "--shards", "3", "--name", "nightly", "-n", ns,
		"--docker-config-secret", "regcred", "--image", image)
	if strings.Contains(out, password) || strings.Contains(out, auth) {
		t.Error("job's output holds the registry password")
	}
	apply(t, ctx, c, out)
	job := waitJob(t, ctx, c, ns, "nightly", 3)
	if job.Status.Succeeded != 3 {
		t.Fatalf("job nightly: %d of 3 pods succeeded (%d failed)", job.Status.Succeeded, job.Status.Failed)
	}
	pods, err := core.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=nightly"})
	must(t, err)
	var indexes []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		indexes = append(indexes, p.Annotations[batchv1.JobCompletionIndexAnnotation])
		if p.Spec.NodeName != kubetest.RealNodeName {
			t.Errorf("pod %s ran on %q, want the real node", p.Name, p.Spec.NodeName)
		}
		if len(p.Status.ContainerStatuses) != 1 {
			t.Errorf("pod %s: container statuses %+v", p.Name, p.Status.ContainerStatuses)
			continue
		}
		cs := p.Status.ContainerStatuses[0]
		if !strings.HasSuffix(cs.ImageID, "@"+imageDigest.String()) || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			t.Errorf("pod %s: image %s (%s), state %+v; want %s, exit 0", p.Name, cs.Image, cs.ImageID, cs.State, imageDigest)
		}
	}
	sort.Strings(indexes)
	if strings.Join(indexes, ",") != "0,1,2" {
		t.Errorf("succeeded pods have completion indexes %v, want 0,1,2", indexes)
	}
	for ref, d := range want {
		repo, tag, _ := strings.Cut(ref, ":")
		if _, _, got := dst.Manifest(t, repo, tag); got != d {
			t.Errorf("%s is %s, want %s", ref, got, d)
		}
	}
	// Each shard's ConfigMap, written by its pod (nothing else here writes them).
	for i := range 3 {
		cm, err := core.ConfigMaps(ns).Get(ctx, kube.ShardConfigMap("nightly", i), metav1.GetOptions{})
		if err != nil {
			t.Errorf("shard %d: %v", i, err)
			continue
		}
		if cm.Labels[kube.LabelShard] != fmt.Sprint(i) {
			t.Errorf("shard %d's ConfigMap labels %v", i, cm.Labels)
		}
	}
	assertShardRBAC(t, ctx, c, ns, "nightly")
	out = kubectl(t, 0, "imagesync", "status", "nightly", "-n", ns, "-o", "json")
	var st struct {
		Shards   int
		Reported []int
		Jobs     int
		Summary  struct{ Copied, Failed int }
	}
	must(t, json.Unmarshal([]byte(out), &st))
	if st.Shards != 3 || len(st.Reported) != 3 || st.Jobs != len(want) || st.Summary.Copied != len(want) || st.Summary.Failed != 0 {
		t.Errorf("status: %+v, want 3 shards reported, %d jobs copied, none failed", st, len(want))
	}

	// 2. A Job with an unreachable rule: status reports it failed (exit 1).
	broken := filepath.Join(dir, "broken.yaml")
	must(t, os.WriteFile(broken, fmt.Appendf(nil, "%s/team/svc0:v0: %s/again/svc0\n127.0.0.1:1/team/gone:1: %s/again/gone\n", src.Host, dst.Host, dst.Host), 0o600))
	out = kubectl(t, 0, "imagesync", "job", "--images", broken, "--shards", "2", "--name", "broken", "-n", ns,
		"--docker-config-secret", "regcred", "--image", image, "--backoff-limit-per-index", "0")
	apply(t, ctx, c, out)
	job = waitJob(t, ctx, c, ns, "broken", 2)
	if job.Status.Failed != 1 {
		t.Errorf("job broken: %d pods failed, want the shard with the unreachable rule", job.Status.Failed)
	}
	out = kubectl(t, 1, "imagesync", "status", "broken", "-n", ns, "-o", "json")
	var bst struct {
		Failed  []struct{ Source string }
		Summary struct{ Copied, Failed int }
	}
	must(t, json.Unmarshal([]byte(out), &bst))
	if bst.Summary.Copied != 1 || bst.Summary.Failed != 1 || len(bst.Failed) != 1 || !strings.Contains(bst.Failed[0].Source, "127.0.0.1:1/team/gone") {
		t.Errorf("status broken: %+v", bst)
	}
	if _, _, got := dst.Manifest(t, "again/svc0", "v0"); got != want["mirror/svc0:v0"] {
		t.Errorf("again/svc0:v0 is %s", got)
	}

	// 3. A CronJob every minute: it runs once, then goes with its Jobs and pods.
	cron := filepath.Join(dir, "cron.yaml")
	must(t, os.WriteFile(cron, fmt.Appendf(nil, "%s/team/svc1:v1: %s/cron/svc1\n", src.Host, dst.Host), 0o600))
	out = kubectl(t, 0, "imagesync", "job", "--images", cron, "--shards", "1", "--name", "every", "-n", ns,
		"--docker-config-secret", "regcred", "--image", image, "--schedule", "* * * * *")
	apply(t, ctx, c, out)
	var ran []batchv1.Job
	for {
		jobs, err := batch.Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelInstance + "=every"})
		must(t, err)
		ran = jobs.Items
		done := false
		for _, j := range ran {
			done = done || j.Status.Succeeded == 1
		}
		if done {
			break
		}
		if ctx.Err() != nil {
			dumpPods(t, c, ns)
			t.Fatalf("the CronJob's Job did not complete: %d jobs", len(ran))
		}
		time.Sleep(time.Second)
	}
	background := metav1.DeletePropagationBackground
	must(t, batch.CronJobs(ns).Delete(ctx, "every", metav1.DeleteOptions{PropagationPolicy: &background}))
	if len(ran) != 1 {
		t.Errorf("the CronJob ran %d times before it was deleted, want once", len(ran))
	}
	if _, _, got := dst.Manifest(t, "cron/svc1", "v1"); got != want["mirror/svc1:v1"] {
		t.Errorf("cron/svc1:v1 is %s", got)
	}
	for {
		jobs, err := batch.Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelInstance + "=every"})
		must(t, err)
		pods, err := core.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelInstance + "=every"})
		must(t, err)
		if len(jobs.Items) == 0 && len(pods.Items) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the CronJob's deletion: %d jobs and %d pods remain", len(jobs.Items), len(pods.Items))
		}
		time.Sleep(time.Second)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pluginRunner runs the real kubectl with the freshly built binary on PATH as
// the kubectl-imagesync plugin (or, without kubectl, the plugin itself).
func pluginRunner(t *testing.T, dir, bin, kubeconfig string) func(t *testing.T, wantCode int, args ...string) string {
	pdir := filepath.Join(dir, "plugins")
	must(t, os.MkdirAll(pdir, 0o755))
	b, err := os.ReadFile(bin)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(pdir, "kubectl-imagesync"), b, 0o755))
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("IMAGESYNC_REQUIRE_CLIENTS") == "1" {
			t.Fatalf("kubectl not found (IMAGESYNC_REQUIRE_CLIENTS=1)")
		}
		t.Logf("kubectl not found: running the plugin directly")
	}
	return func(t *testing.T, wantCode int, args ...string) string {
		t.Helper()
		var cmd *exec.Cmd
		if kubectl != "" {
			cmd = exec.Command(kubectl, args...)
		} else {
			cmd = exec.Command(filepath.Join(pdir, "kubectl-imagesync"), args[1:]...)
		}
		cmd.Env = append(os.Environ(), "PATH="+pdir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig, "HOME="+dir)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		code := cmd.ProcessState.ExitCode()
		t.Logf("kubectl %s → exit %d\nstderr:\n%s", strings.Join(args, " "), code, errb.String())
		if code != wantCode {
			t.Fatalf("kubectl %s: exit %d, want %d\nstdout:\n%s", strings.Join(args, " "), code, wantCode, out.String())
		}
		return out.String()
	}
}

// apply applies the objects job printed, its pods on the host's network and
// told where the API server is (127.0.0.1:PORT instead of the kubernetes
// Service's address, which nothing routes here), with job --apply's code.
func apply(t *testing.T, ctx context.Context, c *kubetest.Cluster, manifests string) {
	t.Helper()
	port := c.Server[strings.LastIndex(c.Server, ":")+1:]
	patch := func(ps *corev1.PodSpec) {
		ps.HostNetwork = true
		ps.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		for i := range ps.Containers {
			ps.Containers[i].Env = append(ps.Containers[i].Env,
				corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.0.1"},
				corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: port})
		}
	}
	var objs []k8sruntime.Object
	for _, doc := range strings.Split(manifests, "\n---\n") {
		var tm metav1.TypeMeta
		must(t, yaml.Unmarshal([]byte(doc), &tm))
		var o k8sruntime.Object
		switch tm.Kind {
		case "ConfigMap":
			o = &corev1.ConfigMap{}
		case "ServiceAccount":
			o = &corev1.ServiceAccount{}
		case "Role":
			o = &rbacv1.Role{}
		case "RoleBinding":
			o = &rbacv1.RoleBinding{}
		case "Job":
			o = &batchv1.Job{}
		case "CronJob":
			o = &batchv1.CronJob{}
		default:
			t.Fatalf("job printed a %q", tm.Kind)
		}
		must(t, yaml.Unmarshal([]byte(doc), o))
		switch o := o.(type) {
		case *batchv1.Job:
			patch(&o.Spec.Template.Spec)
		case *batchv1.CronJob:
			patch(&o.Spec.JobTemplate.Spec.Template.Spec)
		}
		objs = append(objs, o)
	}
	must(t, kube.Apply(ctx, c.RESTConfig(), objs, nil))
}

// waitJob waits until every index of the Job succeeded or failed.
func waitJob(t *testing.T, ctx context.Context, c *kubetest.Cluster, ns, name string, n int32) *batchv1.Job {
	t.Helper()
	batch := typedbatchv1.NewForConfigOrDie(c.RESTConfig())
	for {
		j, err := batch.Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && j.Status.Succeeded+j.Status.Failed >= n && j.Status.Active == 0 {
			dumpPods(t, c, ns)
			return j
		}
		if ctx.Err() != nil {
			dumpPods(t, c, ns)
			t.Fatalf("job %s did not finish: %+v (%v)\nkubelet:\n%s", name, j.Status, err, c.Logs("kubelet"))
		}
		time.Sleep(time.Second)
	}
}

// dumpPods logs each pod's state and its container's output.
func dumpPods(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	core := typedcorev1.NewForConfigOrDie(c.RESTConfig())
	pods, err := core.Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		b, _ := json.Marshal(p.Status.ContainerStatuses)
		t.Logf("pod %s: %s on %q %s\n%s", p.Name, p.Status.Phase, p.Spec.NodeName, b, c.ContainerLogs(ns, p.Name))
	}
}

// assertShardRBAC: the Job's service account may update its shards'
// ConfigMaps and nothing else (the API server's RBAC says no, not us).
func assertShardRBAC(t *testing.T, ctx context.Context, c *kubetest.Cluster, ns, name string) {
	t.Helper()
	admin := typedcorev1.NewForConfigOrDie(c.RESTConfig())
	tok, err := admin.ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	must(t, err)
	sa := typedcorev1.NewForConfigOrDie(&rest.Config{Host: c.Server, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA}})
	own, err := sa.ConfigMaps(ns).Get(ctx, kube.ShardConfigMap(name, 0), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the service account cannot read its own shard's ConfigMap: %v", err)
	}
	if _, err := sa.ConfigMaps(ns).Update(ctx, own, metav1.UpdateOptions{}); err != nil {
		t.Errorf("the service account cannot update its own shard's ConfigMap: %v", err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s as the Job's service account: %v, want Forbidden", what, err)
		}
	}
	rules, err := admin.ConfigMaps(ns).Get(ctx, name+"-rules", metav1.GetOptions{})
	must(t, err)
	rules.Data["extra.yaml"] = "x"
	_, err = sa.ConfigMaps(ns).Update(ctx, rules, metav1.UpdateOptions{})
	forbidden("update the rules' ConfigMap", err)
	forbidden("delete a shard's ConfigMap", sa.ConfigMaps(ns).Delete(ctx, kube.ShardConfigMap(name, 1), metav1.DeleteOptions{}))
	_, err = sa.ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	forbidden("list ConfigMaps", err)
	_, err = sa.Secrets(ns).Get(ctx, "regcred", metav1.GetOptions{})
	forbidden("read the registry Secret", err)
	_, err = sa.ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{})
	forbidden("create a ConfigMap in another namespace", err)
}
