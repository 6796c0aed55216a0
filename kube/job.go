package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Labels put on every object of a run, and on the shards' ConfigMaps.
const (
	LabelName     = "app.kubernetes.io/name"
	LabelInstance = "app.kubernetes.io/instance"
	LabelShard    = "imagesync.io/shard"
	appName       = "imagesync"
)

// Where the pod finds its files.
const (
	configDir       = "/etc/imagesync/config"
	dockerConfigDir = "/etc/imagesync/docker"
	scratchDir      = "/tmp"
)

// RunFile is a rule or config file given to the run, with the flag that
// reads it (-f, --images, --config).
type RunFile struct {
	Flag string
	Name string // key in the ConfigMap and file name in the pod
	Data []byte
}

// JobSpec describes a sharded run.
type JobSpec struct {
	Name      string
	Namespace string
	Image     string
	Shards    int
	// BackoffLimitPerIndex is how many times one shard's pod is retried.
	BackoffLimitPerIndex int
	// Schedule, when set, makes a CronJob of the run (cron syntax).
	Schedule string
	Files    []RunFile
	// Args are more flags for `imagesync sync` in each pod.
	Args []string
	// DockerConfigSecret names a Secret (type kubernetes.io/dockerconfigjson)
	// whose .dockerconfigjson becomes the pod's docker config.json.
	DockerConfigSecret string
	// MetricsPort, when set, makes each pod serve Prometheus metrics on
	// this port (sync --metrics-addr :PORT), with the prometheus.io/scrape,
	// port and path annotations that scrape configs commonly select on.
	MetricsPort int
}

// Validate checks what the API server would refuse, naming the flag.
func (s JobSpec) Validate() error {
	if errs := validName(s.Name); errs != "" {
		return fmt.Errorf("job name %q: %s", s.Name, errs)
	}
	if s.Shards < 1 {
		return fmt.Errorf("--shards %d: want at least 1", s.Shards)
	}
	if s.BackoffLimitPerIndex < 0 {
		return fmt.Errorf("--backoff-limit-per-index %d: want 0 or more", s.BackoffLimitPerIndex)
	}
	if len(s.Files) == 0 {
		return fmt.Errorf("no rules: give -f FILE or --images FILE")
	}
	if s.MetricsPort < 0 || s.MetricsPort > 65535 {
		return fmt.Errorf("--metrics-port %d: want a port from 1 to 65535 (0: no metrics)", s.MetricsPort)
	}
	if s.Namespace != "" {
		if why := validNamespace(s.Namespace); why != "" {
			return fmt.Errorf("namespace %q: %s", s.Namespace, why)
		}
	}
	if s.Schedule != "" {
		if why := validSchedule(s.Schedule); why != "" {
			return fmt.Errorf("--schedule %q: %s", s.Schedule, why)
		}
	}
	if s.DockerConfigSecret != "" {
		if why := validSecretName(s.DockerConfigSecret); why != "" {
			return fmt.Errorf("--docker-config-secret %q: %s", s.DockerConfigSecret, why)
		}
	}
	return nil
}

// validName is a DNS-1123 label short enough for "<name>-shard-<I>" and the
// pods' names.
func validName(n string) string {
	if n == "" || len(n) > 52 {
		return "want 1 to 52 characters"
	}
	for i, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(n)-1
		if !ok {
			return "want lower-case letters, digits and inner dashes (a DNS label)"
		}
	}
	return ""
}

func (s JobSpec) labels() map[string]string {
	return map[string]string{LabelName: appName, LabelInstance: s.Name}
}

func (s JobSpec) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: s.labels()}
}

// Objects are the run's objects, in the order they are applied: the rules'
// ConfigMap, the ServiceAccount, its Role and RoleBinding, then the Job (or
// CronJob).
func (s JobSpec) Objects() []runtime.Object {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: s.meta(s.Name + "-rules"),
		Data:       map[string]string{},
	}
	for _, f := range s.Files {
		cm.Data[f.Name] = string(f.Data)
	}
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: s.meta(s.Name),
	}
	// The shards write their results to ConfigMaps <name>-shard-<I>; that is
	// all they do with the API.
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: s.meta(s.Name),
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"configmaps"},
			Verbs:     []string{"create"},
		}, {
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			Verbs:         []string{"get", "update"},
			ResourceNames: s.shardNames(),
		}},
	}
	binding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: s.meta(s.Name),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: s.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: s.Name, Namespace: s.Namespace}},
	}
	objs := []runtime.Object{cm, sa, role, binding}
	if s.Schedule != "" {
		objs = append(objs, &batchv1.CronJob{
			TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
			ObjectMeta: s.meta(s.Name),
			Spec: batchv1.CronJobSpec{
				Schedule:          s.Schedule,
				ConcurrencyPolicy: batchv1.ForbidConcurrent,
				JobTemplate: batchv1.JobTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: s.labels()},
					Spec:       s.jobSpec(),
				},
			},
		})
	} else {
		objs = append(objs, &batchv1.Job{
			TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			ObjectMeta: s.meta(s.Name),
			Spec:       s.jobSpec(),
		})
	}
	return objs
}

// ShardConfigMap is the name of shard i's result ConfigMap.
func ShardConfigMap(job string, i int) string { return job + "-shard-" + strconv.Itoa(i) }

func (s JobSpec) shardNames() []string {
	var out []string
	for i := 0; i < s.Shards; i++ {
		out = append(out, ShardConfigMap(s.Name, i))
	}
	return out
}

func (s JobSpec) jobSpec() batchv1.JobSpec {
	n := int32(s.Shards)
	backoff := int32(s.BackoffLimitPerIndex)
	args := []string{"sync"}
	for _, f := range s.Files {
		args = append(args, f.Flag, configDir+"/"+f.Name)
	}
	args = append(args, "--shards", strconv.Itoa(s.Shards), "--kube-report", s.Name,
		"--ledger", scratchDir+"/imagesync/ledger.jsonl", "--no-progress", "-o", "json")
	var annotations map[string]string
	var ports []corev1.ContainerPort
	if s.MetricsPort > 0 {
		port := strconv.Itoa(s.MetricsPort)
		args = append(args, "--metrics-addr", ":"+port)
		annotations = map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}
		ports = []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(s.MetricsPort), Protocol: corev1.ProtocolTCP}}
	}
	args = append(args, s.Args...)
	env := []corev1.EnvVar{
		{Name: "HOME", Value: scratchDir},
		// Where the shard writes its ConfigMap (client-go's in-cluster namespace).
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "rules", MountPath: configDir, ReadOnly: true},
		{Name: "scratch", MountPath: scratchDir},
	}
	volumes := []corev1.Volume{
		{Name: "rules", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.Name + "-rules"}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if s.DockerConfigSecret != "" {
		env = append(env, corev1.EnvVar{Name: "DOCKER_CONFIG", Value: dockerConfigDir})
		mounts = append(mounts, corev1.VolumeMount{Name: "docker-config", MountPath: dockerConfigDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "docker-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: s.DockerConfigSecret,
			Items:      []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
		}}})
	}
	yes, no := true, false
	uid := int64(65532)
	return batchv1.JobSpec{
		CompletionMode:       ptr(batchv1.IndexedCompletion),
		Completions:          &n,
		Parallelism:          &n,
		BackoffLimitPerIndex: &backoff,
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: s.labels(), Annotations: annotations},
			Spec: corev1.PodSpec{
				ServiceAccountName: s.Name,
				RestartPolicy:      corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{
					RunAsNonRoot:   &yes,
					RunAsUser:      &uid,
					RunAsGroup:     &uid,
					FSGroup:        &uid,
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				Containers: []corev1.Container{{
					Name:    "imagesync",
					Image:   s.Image,
					Command: []string{"imagesync"},
					Args:    args,
					Env:     env,
					Ports:   ports,
					SecurityContext: &corev1.SecurityContext{
						ReadOnlyRootFilesystem:   &yes,
						AllowPrivilegeEscalation: &no,
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
					VolumeMounts: mounts,
				}},
				Volumes: volumes,
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// WriteYAML prints objects as one multi-document YAML stream.
func WriteYAML(w io.Writer, objs []runtime.Object) error {
	var buf bytes.Buffer
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Apply creates the objects, or updates those that exist. A Job that exists
// is an error (its pod template cannot change): delete it first.
func Apply(ctx context.Context, cfg *rest.Config, objs []runtime.Object, report func(kind, name, what string)) error {
	a, err := newAPI(cfg)
	if err != nil {
		return err
	}
	for _, o := range objs {
		var kind, name, what string
		var err error
		switch o := o.(type) {
		case *corev1.ConfigMap:
			kind, name = "configmap", o.Name
			what, err = resource{a.core, o.Namespace, "configmaps"}.upsert(ctx, o, &corev1.ConfigMap{})
		case *corev1.ServiceAccount:
			kind, name = "serviceaccount", o.Name
			what, err = resource{a.core, o.Namespace, "serviceaccounts"}.upsert(ctx, o, &corev1.ServiceAccount{})
		case *rbacv1.Role:
			kind, name = "role", o.Name
			what, err = resource{a.rbac, o.Namespace, "roles"}.upsert(ctx, o, &rbacv1.Role{})
		case *rbacv1.RoleBinding:
			kind, name = "rolebinding", o.Name
			what, err = resource{a.rbac, o.Namespace, "rolebindings"}.upsert(ctx, o, &rbacv1.RoleBinding{})
		case *batchv1.CronJob:
			kind, name = "cronjob", o.Name
			what, err = resource{a.batch, o.Namespace, "cronjobs"}.upsert(ctx, o, &batchv1.CronJob{})
		case *batchv1.Job:
			kind, name, what = "job", o.Name, "created"
			err = resource{a.batch, o.Namespace, "jobs"}.create(ctx, o)
			if apierrors.IsAlreadyExists(err) {
				err = fmt.Errorf("job %s/%s exists: delete it first (kubectl delete job -n %s %s) or choose another --name", o.Namespace, o.Name, o.Namespace, o.Name)
			}
		default:
			return fmt.Errorf("cannot apply %T", o)
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", kind, name, err)
		}
		if report != nil {
			report(kind, name, what)
		}
	}
	return nil
}
