package kubetest

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedbatchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// The control plane runs an Indexed Job: the job controller makes one pod
// per index, the scheduler binds them to the fake node, kwok completes them.
func TestIndexedJobCompletes(t *testing.T) {
	c := Start(t, Options{Workloads: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	batch := typedbatchv1.NewForConfigOrDie(c.RESTConfig())
	core := typedcorev1.NewForConfigOrDie(c.RESTConfig())
	n := int32(3)
	mode := batchv1.IndexedCompletion
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: batchv1.JobSpec{
			CompletionMode: &mode, Completions: &n, Parallelism: &n,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "c", Image: "example.invalid/never-pulled:1"}},
			}},
		},
	}
	if _, err := batch.Jobs("default").Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		j, err := batch.Jobs("default").Get(ctx, "smoke", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Succeeded == n {
			break
		}
		if ctx.Err() != nil {
			pods, _ := core.Pods("default").List(context.Background(), metav1.ListOptions{})
			for _, p := range pods.Items {
				t.Logf("pod %s: node %q phase %s", p.Name, p.Spec.NodeName, p.Status.Phase)
			}
			t.Fatalf("job status %+v", j.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pods, err := core.Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=smoke"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			seen[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = true
		}
	}
	if len(seen) != 3 || !seen["0"] || !seen["1"] || !seen["2"] {
		t.Errorf("succeeded completion indexes %v, want 0, 1, 2", seen)
	}
}
