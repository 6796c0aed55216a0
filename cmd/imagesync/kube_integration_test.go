package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedappsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	typedbatchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	typedrbacv1 "k8s.io/client-go/kubernetes/typed/rbac/v1"

	"github.com/imagesync/imagesync/internal/kubetest"
	"github.com/imagesync/imagesync/internal/registrytest"
)

func template(s corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: s}
}

// must fails the test on an API error.
func must(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestFromCluster: Deployments, a CronJob, a DaemonSet with init containers
// and a Pod whose status knows its digest, in a real API server; plan
// --from-cluster lists exactly their images, by digest where known, under
// the target, without those the cluster pulls from the target already.
func TestFromCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	c := kubetest.Start(t, kubetest.Options{})
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	ctx := context.Background()
	ok := must(t)
	cfg := c.RESTConfig()
	core := typedcorev1.NewForConfigOrDie(cfg)
	apps := typedappsv1.NewForConfigOrDie(cfg)
	batch := typedbatchv1.NewForConfigOrDie(cfg)

	d := map[string]string{}
	for i, name := range []string{"web:1.25", "sidecar:2", "cron:1", "init:3", "agent:4", "cache:7", "other:1", "pinned:1"} {
		repo, tag, _ := strings.Cut(name, ":")
		d[name], _ = src.PushRandomImage(t, "team/"+repo, tag, linuxAmd64, 1, 200, false, int64(7000+i))
	}
	_, _ = dst.PushRandomImage(t, "mirror/team/already", "1", linuxAmd64, 1, 200, false, 7100)
	img := func(name string) string { return src.Host + "/team/" + name }
	target := dst.Host + "/mirror"
	mirrored := target + "/" + mirrorHost(src.Host) // the source registry stays in the path

	for _, ns := range []string{"apps", "other"} {
		ok(core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
		// No controller-manager here: the default ServiceAccount pods need.
		ok(core.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}))
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	ok(apps.Deployments("apps").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: template(pod(img("web:1.25"), img("sidecar:2")))}}, metav1.CreateOptions{}))
	ok(apps.Deployments("apps").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "mirrored"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: template(pod(target + "/team/already:1"))}}, metav1.CreateOptions{}))
	pinned := img("pinned@" + d["pinned:1"])
	ok(apps.Deployments("apps").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: template(pod(pinned))}}, metav1.CreateOptions{}))
	ok(batch.CronJobs("apps").Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: func() corev1.PodTemplateSpec {
			p := template(pod(img("cron:1")))
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			return p
		}()}}}}, metav1.CreateOptions{}))
	ds := pod(img("agent:4"))
	ds.InitContainers = []corev1.Container{{Name: "init", Image: img("init:3")}}
	ok(apps.DaemonSets("apps").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: template(ds)}}, metav1.CreateOptions{}))
	p, err := core.Pods("apps").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cache"}, Spec: pod(img("cache:7"))}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c0", Image: img("cache:7"), ImageID: "docker-pullable://" + img("cache@"+d["cache:7"])}}
	if _, err := core.Pods("apps").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ok(apps.Deployments("other").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: template(pod(img("other:1")))}}, metav1.CreateOptions{}))

	dir := t.TempDir()
	written := filepath.Join(dir, "imagesync.yaml")
	r := runAs(t, "kubectl-imagesync", nil, "plan", "--from-cluster", "--kubeconfig", c.Kubeconfig, "-n", "apps",
		"--to", target, "--write-rules", written, "-o", "json")
	if r.code != 4 && r.code != 0 {
		t.Fatalf("plan --from-cluster: exit %d", r.code)
	}
	got := map[string]string{}
	for _, j := range planJobs(t, r) {
		got[j.Source+" → "+j.Destination] = j.Action + " " + j.Digest
	}
	want := map[string]string{
		img("web:1.25") + " → " + mirrored + "/team/web:1.25":           "copy " + d["web:1.25"],
		img("sidecar:2") + " → " + mirrored + "/team/sidecar:2":         "copy " + d["sidecar:2"],
		img("cron:1") + " → " + mirrored + "/team/cron:1":               "copy " + d["cron:1"],
		img("init:3") + " → " + mirrored + "/team/init:3":               "copy " + d["init:3"],
		img("agent:4") + " → " + mirrored + "/team/agent:4":             "copy " + d["agent:4"],
		img("cache@"+d["cache:7"]) + " → " + mirrored + "/team/cache:7": "copy " + d["cache:7"],
		pinned + " → " + mirrored + "/team/pinned@" + d["pinned:1"]:     "copy " + d["pinned:1"],
	}
	if len(got) != len(want) {
		t.Errorf("plan has %d jobs, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected job %s", k)
		}
	}
	// The rules written are the same images, read back with -f.
	r = runCLI(t, nil, "plan", "-f", written, "-o", "json")
	again := map[string]string{}
	for _, j := range planJobs(t, r) {
		again[j.Source+" → "+j.Destination] = j.Action + " " + j.Digest
	}
	if !maps.Equal(again, got) {
		t.Errorf("plan -f %s:\n%v\nwant\n%v", written, again, got)
	}
	text := readFile(t, written)
	for _, s := range []string{"sync:", "from: " + img("cache@"+d["cache:7"]), mirrored + "/team/cache:7", "from: " + img("init:3")} {
		if !strings.Contains(text, s) {
			t.Errorf("--write-rules file lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "already") || strings.Contains(text, "other") {
		t.Errorf("--write-rules file has images it should not:\n%s", text)
	}

	// -A: every namespace, through imagesync's own name (--kube-namespace is not needed).
	r = runCLI(t, nil, "plan", "--from-cluster", "--kubeconfig", c.Kubeconfig, "-A", "--to", target, "-o", "json")
	all := planJobs(t, r)
	if len(all) != len(want)+1 {
		t.Errorf("-A: %d jobs, want %d", len(all), len(want)+1)
	}
	// sync copies them, digests exact.
	r = runCLI(t, nil, "sync", "--from-cluster", "--kubeconfig", c.Kubeconfig, "--kube-namespace", "apps", "--to", target)
	if r.code != 0 {
		t.Fatalf("sync --from-cluster: exit %d", r.code)
	}
	for name, digest := range d {
		if name == "other:1" {
			continue
		}
		repo, tag, _ := strings.Cut(name, ":")
		ref := tag
		if repo == "pinned" {
			ref = digest
		}
		assertDigest(t, dst, "mirror/"+mirrorHost(src.Host)+"/team/"+repo, ref, digest)
	}
	// Bad input is a usage error naming the flag.
	r = runCLI(t, nil, "plan", "--from-cluster", "--kubeconfig", c.Kubeconfig)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--to") {
		t.Errorf("--from-cluster without --to: exit %d, %q", r.code, r.stderr)
	}
}

// TestJobApplyAndStatus: `kubectl imagesync job --apply` against a real API
// server makes the Job, ConfigMap, ServiceAccount and RBAC; the job
// controller makes one pod per completion index (kwok completes them).
// Shard processes run here with a kubeconfig for the test server write
// their ConfigMaps, and `status` adds them up.
func TestJobApplyAndStatus(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("integration test")
	}
	c := kubetest.Start(t, kubetest.Options{Workloads: true})
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ok := must(t)
	cfg := c.RESTConfig()
	core := typedcorev1.NewForConfigOrDie(cfg)
	batch := typedbatchv1.NewForConfigOrDie(cfg)
	rbac := typedrbacv1.NewForConfigOrDie(cfg)

	want := map[string]string{}
	var rules strings.Builder
	for r := range 8 {
		for tag := range 2 {
			d, _ := src.PushRandomImage(t, fmt.Sprintf("team/svc%d", r), fmt.Sprintf("v%d", tag), linuxAmd64, 1, 200, false, int64(8000+10*r+tag))
			want[fmt.Sprintf("mirror/svc%d:v%d", r, tag)] = d
		}
		fmt.Fprintf(&rules, "%s/team/svc%d: %s/mirror/svc%d\n", src.Host, r, dst.Host, r)
	}
	// One image that does not exist: a failed job in whichever shard has it.
	fmt.Fprintf(&rules, "%s/team/gone:1: %s/mirror/gone\n", src.Host, dst.Host)
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", rules.String())

	const secretValue = "c2VjcmV0LXBhc3N3b3JkLTQy" // must never be printed
	ok(core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mirror"}}, metav1.CreateOptions{}))
	ok(core.Secrets("mirror").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"r.example":{"auth":"` + secretValue + `"}}}`)}}, metav1.CreateOptions{}))

	args := []string{"job", "--images", images, "--shards", "3", "--name", "nightly", "--kubeconfig", c.Kubeconfig, "-n", "mirror",
		"--docker-config-secret", "regcred", "--image", "registry.example/imagesync:test"}
	// A native config file: the pods run it with -f.
	native := writeFile(t, dir, "imagesync.yaml", fmt.Sprintf("sync:\n  - from: %s/team/svc0\n    to: %s/mirror/svc0\n", src.Host, dst.Host))
	r := runAs(t, "kubectl-imagesync", nil, "job", "-f", native, "--shards", "2", "-n", "mirror", "--kubeconfig", c.Kubeconfig, "--image", "registry.example/imagesync:test")
	if r.code != 0 || !strings.Contains(r.stdout, "- -f\n") || !strings.Contains(r.stdout, "/etc/imagesync/config/imagesync.yaml") || !strings.Contains(r.stdout, "imagesync.yaml: |") {
		t.Errorf("job -f: exit %d", r.code)
	}
	// Printed: every object, the secret named, never its content.
	r = runAs(t, "kubectl-imagesync", nil, args...)
	if r.code != 0 {
		t.Fatalf("job: exit %d", r.code)
	}
	for _, s := range []string{"kind: Job", "completionMode: Indexed", "completions: 3", "parallelism: 3", "backoffLimitPerIndex: 2",
		"runAsNonRoot: true", "readOnlyRootFilesystem: true", "kind: ConfigMap", "kind: ServiceAccount", "kind: Role", "kind: RoleBinding",
		"secretName: regcred", "namespace: mirror"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("job output lacks %q", s)
		}
	}
	if strings.Contains(r.stdout+r.stderr, secretValue) {
		t.Error("job output holds the secret's content")
	}
	r = runAs(t, "kubectl-imagesync", nil, append(args, "--apply")...)
	if r.code != 0 {
		t.Fatalf("job --apply: exit %d", r.code)
	}
	if strings.Contains(r.stdout+r.stderr, secretValue) {
		t.Error("job --apply output holds the secret's content")
	}
	job, err := batch.Jobs("mirror").Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js := job.Spec
	if *js.CompletionMode != batchv1.IndexedCompletion || *js.Completions != 3 || *js.Parallelism != 3 || js.BackoffLimitPerIndex == nil || *js.BackoffLimitPerIndex != 2 {
		t.Errorf("job spec: mode %v completions %d parallelism %d backoffLimitPerIndex %v", *js.CompletionMode, *js.Completions, *js.Parallelism, js.BackoffLimitPerIndex)
	}
	ps := js.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
		ps.Containers[0].SecurityContext == nil || !*ps.Containers[0].SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("pod security: %+v / %+v", ps.SecurityContext, ps.Containers[0].SecurityContext)
	}
	if ps.ServiceAccountName != "nightly" {
		t.Errorf("service account %q", ps.ServiceAccountName)
	}
	cm, err := core.ConfigMaps("mirror").Get(ctx, "nightly-rules", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["images.yaml"] != rules.String() {
		t.Errorf("rules ConfigMap: %q", cm.Data)
	}
	ok(core.ServiceAccounts("mirror").Get(ctx, "nightly", metav1.GetOptions{}))
	role, err := rbac.Roles("mirror").Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range role.Rules {
		if len(rule.Resources) != 1 || rule.Resources[0] != "configmaps" {
			t.Errorf("role grants more than configmaps: %+v", rule)
		}
	}
	ok(rbac.RoleBindings("mirror").Get(ctx, "nightly", metav1.GetOptions{}))

	// The job controller makes pods 0..2; kwok completes them.
	for {
		j, err := batch.Jobs("mirror").Get(ctx, "nightly", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Succeeded == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("job status: %+v", j.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pods, err := core.Pods("mirror").List(ctx, metav1.ListOptions{LabelSelector: "job-name=nightly"})
	if err != nil {
		t.Fatal(err)
	}
	var indexes []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			indexes = append(indexes, p.Annotations[batchv1.JobCompletionIndexAnnotation])
		}
	}
	sort.Strings(indexes)
	if strings.Join(indexes, ",") != "0,1,2" {
		t.Errorf("succeeded pods have completion indexes %v, want 0,1,2", indexes)
	}

	// Before any shard reported: status says so.
	r = runAs(t, "kubectl-imagesync", nil, "status", "nightly", "--kubeconfig", c.Kubeconfig, "-n", "mirror")
	if r.code == 0 {
		t.Errorf("status without reports: exit 0")
	}

	// The shards, as the pods would run them, here with the test kubeconfig.
	podArgs := ps.Containers[0].Args
	if want := "sync --images /etc/imagesync/config/images.yaml --shards 3 --kube-report nightly"; !strings.HasPrefix(strings.Join(podArgs, " "), want) {
		t.Errorf("pod args %q, want them to start with %q", podArgs, want)
	}
	var wg sync.WaitGroup
	codes := make([]int, 3)
	outs := make([]string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			home := t.TempDir()
			// The pod's own command line, its files here, plus a kubeconfig
			// instead of the pod's service account.
			var args []string
			for _, a := range podArgs {
				switch {
				case a == "/etc/imagesync/config/images.yaml":
					a = images
				case strings.HasSuffix(a, "ledger.jsonl"):
					a = filepath.Join(home, "ledger.jsonl")
				}
				args = append(args, a)
			}
			args = append(args, "--kubeconfig", c.Kubeconfig, "--kube-namespace", "mirror", "--retries", "0")
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i))
			out, _ := cmd.CombinedOutput()
			outs[i], codes[i] = string(out), cmd.ProcessState.ExitCode()
		}()
	}
	wg.Wait()
	failedShards := 0
	for i := range 3 {
		t.Logf("shard %d: exit %d\n%s", i, codes[i], outs[i])
		switch codes[i] {
		case 0:
		case exitSomeFail, exitAllFailed:
			failedShards++
		default:
			t.Errorf("shard %d: exit %d", i, codes[i])
		}
	}
	if failedShards != 1 {
		t.Errorf("%d shards failed, want the one with the missing image", failedShards)
	}
	for ref, d := range want {
		repo, tag, _ := strings.Cut(ref, ":")
		assertDigest(t, dst, repo, tag, d)
	}

	r = runAs(t, "kubectl-imagesync", nil, "status", "nightly", "--kubeconfig", c.Kubeconfig, "-n", "mirror", "-o", "json")
	if r.code != exitSomeFail {
		t.Errorf("status: exit %d, want %d (one image failed)", r.code, exitSomeFail)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Copied, Failed int
	}
	b, _ := json.Marshal(st.Summary)
	_ = json.Unmarshal(b, &sum)
	if st.Shards != 3 || len(st.Reported) != 3 || len(st.Missing) != 0 || st.Jobs != len(want)+1 || sum.Copied != len(want) || sum.Failed != 1 {
		t.Errorf("status: shards %d reported %v missing %v jobs %d copied %d failed %d; want 3, [0 1 2], [], %d, %d, 1",
			st.Shards, st.Reported, st.Missing, st.Jobs, sum.Copied, sum.Failed, len(want)+1, len(want))
	}
	if len(st.Failed) != 1 || !strings.Contains(st.Failed[0].Source, "team/gone:1") {
		t.Errorf("failed jobs across shards: %+v", st.Failed)
	}
	// Applying again updates what can change and refuses to replace the Job.
	r = runAs(t, "kubectl-imagesync", nil, append(args, "--apply")...)
	if r.code != exitAllFailed || !strings.Contains(r.stderr, "job mirror/nightly exists") || !strings.Contains(r.stdout, "configmap/nightly-rules configured") {
		t.Errorf("second job --apply: exit %d", r.code)
	}
	// --schedule: a CronJob with the same pod template.
	r = runAs(t, "kubectl-imagesync", nil, "job", "--images", images, "--shards", "2", "--name", "weekly", "--kubeconfig", c.Kubeconfig,
		"-n", "mirror", "--schedule", "0 3 * * 0", "--image", "registry.example/imagesync:test", "--apply")
	if r.code != 0 {
		t.Fatalf("job --schedule --apply: exit %d", r.code)
	}
	cj, err := batch.CronJobs("mirror").Get(ctx, "weekly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cj.Spec.Schedule != "0 3 * * 0" || *cj.Spec.JobTemplate.Spec.Completions != 2 || *cj.Spec.JobTemplate.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("cronjob spec %+v", cj.Spec)
	}

	r = runAs(t, "kubectl-imagesync", nil, "status", "nightly", "--kubeconfig", c.Kubeconfig, "-n", "mirror")
	if !strings.Contains(r.stdout, "3 of 3 shards reported") || !strings.Contains(r.stdout, "team/gone:1") || !strings.Contains(r.stdout, fmt.Sprintf("%d copied", len(want))) {
		t.Errorf("status text:\n%s", r.stdout)
	}
}
