package kube

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/dockerhub"
)

// Image is one image reference a cluster's workloads use.
type Image struct {
	Registry   string   // "docker.io"
	Repository string   // "library/nginx"
	Tag        string   // "" when referenced by digest only
	Digest     string   // from the reference, or from a pod's status.imageID
	Users      []string // "deployment/ns/name", sorted
	// Containers are where the image is used, one per container.
	Containers []Container
}

// Container is one container of a workload: where an image reference was
// found, for warnings that point at it.
type Container struct {
	Kind      string // pod, deployment, cronjob, …
	Namespace string
	Name      string // the workload's
	Container string
}

func (c Container) String() string {
	return fmt.Sprintf("%s %s/%s, container %s", c.Kind, c.Namespace, c.Name, c.Container)
}

// Skipped is an image reference of a workload that is not mirrored: it
// breaks the reference grammar (anyone who may create a pod writes these).
type Skipped struct {
	Container
	Image  string
	Reason string
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s: image %q: %s", s.Container, s.Image, s.Reason)
}

// Name is the image as a reference: registry/repository[:tag][@digest].
func (i Image) Name() string {
	s := i.Registry + "/" + i.Repository
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// ClusterImages lists the images of the Pods, Deployments, StatefulSets,
// DaemonSets, ReplicaSets, Jobs and CronJobs of namespace ("" for all):
// containers, init and ephemeral containers. A tag a running pod resolved
// (its status imageID holds a repository digest) gets that digest.
//
// A reference that breaks the grammar is not an error of the whole run: it
// is returned in skipped, naming the workload and container.
func ClusterImages(ctx context.Context, cfg *rest.Config, namespace string) (images []Image, skipped []Skipped, err error) {
	a, err := newAPI(cfg)
	if err != nil {
		return nil, nil, err
	}
	c := collector{images: map[string]*Image{}, digests: map[string]map[string]bool{}}
	where := namespace
	if where == "" {
		where = "all namespaces"
	}
	wrap := func(kind string, err error) error {
		return fmt.Errorf("listing %s in %s: %w", kind, where, err)
	}
	pods := &corev1.PodList{}
	if err := (resource{a.core, namespace, "pods"}).list(ctx, "", pods); err != nil {
		return nil, nil, wrap("pods", err)
	}
	for _, p := range pods.Items {
		c.spec(Container{Kind: "pod", Namespace: p.Namespace, Name: p.Name}, &p.Spec)
		c.status(&p)
	}
	deps := &appsv1.DeploymentList{}
	if err := (resource{a.apps, namespace, "deployments"}).list(ctx, "", deps); err != nil {
		return nil, nil, wrap("deployments", err)
	}
	for _, d := range deps.Items {
		c.spec(Container{Kind: "deployment", Namespace: d.Namespace, Name: d.Name}, &d.Spec.Template.Spec)
	}
	sts := &appsv1.StatefulSetList{}
	if err := (resource{a.apps, namespace, "statefulsets"}).list(ctx, "", sts); err != nil {
		return nil, nil, wrap("statefulsets", err)
	}
	for _, d := range sts.Items {
		c.spec(Container{Kind: "statefulset", Namespace: d.Namespace, Name: d.Name}, &d.Spec.Template.Spec)
	}
	dss := &appsv1.DaemonSetList{}
	if err := (resource{a.apps, namespace, "daemonsets"}).list(ctx, "", dss); err != nil {
		return nil, nil, wrap("daemonsets", err)
	}
	for _, d := range dss.Items {
		c.spec(Container{Kind: "daemonset", Namespace: d.Namespace, Name: d.Name}, &d.Spec.Template.Spec)
	}
	rss := &appsv1.ReplicaSetList{}
	if err := (resource{a.apps, namespace, "replicasets"}).list(ctx, "", rss); err != nil {
		return nil, nil, wrap("replicasets", err)
	}
	for _, d := range rss.Items {
		c.spec(Container{Kind: "replicaset", Namespace: d.Namespace, Name: d.Name}, &d.Spec.Template.Spec)
	}
	jobs := &batchv1.JobList{}
	if err := (resource{a.batch, namespace, "jobs"}).list(ctx, "", jobs); err != nil {
		return nil, nil, wrap("jobs", err)
	}
	for _, d := range jobs.Items {
		c.spec(Container{Kind: "job", Namespace: d.Namespace, Name: d.Name}, &d.Spec.Template.Spec)
	}
	cjs := &batchv1.CronJobList{}
	if err := (resource{a.batch, namespace, "cronjobs"}).list(ctx, "", cjs); err != nil {
		return nil, nil, wrap("cronjobs", err)
	}
	for _, d := range cjs.Items {
		c.spec(Container{Kind: "cronjob", Namespace: d.Namespace, Name: d.Name}, &d.Spec.JobTemplate.Spec.Template.Spec)
	}
	return c.result(), c.bad, nil
}

type collector struct {
	images  map[string]*Image          // by reference as normalised
	digests map[string]map[string]bool // normalised tag reference → digests pods resolved it to
	bad     []Skipped
}

func (c *collector) add(where Container, ref string) {
	img, err := ParseImage(ref)
	if err != nil {
		c.bad = append(c.bad, Skipped{Container: where, Image: ref, Reason: err.Error()})
		return
	}
	user := where.Kind + "/" + where.Namespace + "/" + where.Name
	key := img.Name()
	if have, ok := c.images[key]; ok {
		if !slices.Contains(have.Users, user) {
			have.Users = append(have.Users, user)
		}
		have.Containers = append(have.Containers, where)
		return
	}
	img.Users = []string{user}
	img.Containers = []Container{where}
	c.images[key] = &img
}

func (c *collector) spec(where Container, s *corev1.PodSpec) {
	for _, ct := range s.InitContainers {
		where.Container = ct.Name
		c.add(where, ct.Image)
	}
	for _, ct := range s.Containers {
		where.Container = ct.Name
		c.add(where, ct.Image)
	}
	for _, ct := range s.EphemeralContainers {
		where.Container = ct.Name
		c.add(where, ct.Image)
	}
}

// repoDigest matches the repository digest in an imageID:
// "docker-pullable://nginx@sha256:…", "docker.io/library/nginx@sha256:…".
var repoDigest = lazyRegexp(`^(?:[a-z-]+://)?([^@]+)@(sha256:[0-9a-f]{64})$`)

// status learns the digests a pod's container runtime resolved tags to.
func (c *collector) status(p *corev1.Pod) {
	images := map[string]string{}
	for _, ct := range p.Spec.InitContainers {
		images[ct.Name] = ct.Image
	}
	for _, ct := range p.Spec.Containers {
		images[ct.Name] = ct.Image
	}
	for _, ct := range p.Spec.EphemeralContainers {
		images[ct.Name] = ct.Image
	}
	var all []corev1.ContainerStatus
	all = append(all, p.Status.InitContainerStatuses...)
	all = append(all, p.Status.ContainerStatuses...)
	all = append(all, p.Status.EphemeralContainerStatuses...)
	for _, st := range all {
		spec, ok := images[st.Name]
		if !ok {
			continue
		}
		m := repoDigest().FindStringSubmatch(st.ImageID)
		if m == nil {
			continue // an image (config) ID, not a repository digest
		}
		img, err := ParseImage(spec)
		if err != nil || img.Digest != "" {
			continue
		}
		// The runtime's repository must be the one the spec names.
		if idImg, err := ParseImage(m[1]); err != nil || idImg.Registry != img.Registry || idImg.Repository != img.Repository {
			continue
		}
		key := img.Name()
		if c.digests[key] == nil {
			c.digests[key] = map[string]bool{}
		}
		c.digests[key][m[2]] = true
	}
}

func (c *collector) result() []Image {
	var out []Image
	for key, img := range c.images {
		if img.Digest == "" {
			// One digest per tag: the pods agree, or (a tag moved between
			// pod starts) the last in order is taken.
			var ds []string
			for d := range c.digests[key] {
				ds = append(ds, d)
			}
			sort.Strings(ds)
			if len(ds) > 0 {
				img.Digest = ds[len(ds)-1]
			}
		}
		sort.Strings(img.Users)
		out = append(out, *img)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name() < out[b].Name() })
	// The same image named with and without its digest is one image.
	var merged []Image
	for _, img := range out {
		if n := len(merged); n > 0 && merged[n-1].Name() == img.Name() {
			merged[n-1].Users = append(merged[n-1].Users, img.Users...)
			sort.Strings(merged[n-1].Users)
			merged[n-1].Users = slices.Compact(merged[n-1].Users)
			merged[n-1].Containers = append(merged[n-1].Containers, img.Containers...)
			continue
		}
		merged = append(merged, img)
	}
	return merged
}

// ParseImage reads an image reference the way the container runtime does:
// "nginx" is docker.io/library/nginx:latest; a first path component with a
// dot or a colon, or "localhost", is a registry.
func ParseImage(ref string) (Image, error) {
	var img Image
	s := strings.TrimSpace(ref)
	if s == "" {
		return img, fmt.Errorf("empty image reference")
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		img.Digest = s[i+1:]
		s = s[:i]
		if !strings.HasPrefix(img.Digest, "sha256:") || !oci.ValidDigest(img.Digest) {
			return img, fmt.Errorf("image %q: bad digest", ref)
		}
	}
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		img.Tag = s[i+1:]
		s = s[:i]
	}
	first, rest, ok := strings.Cut(s, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		img.Registry, img.Repository = first, rest
	} else {
		img.Registry, img.Repository = dockerhub.Registry, s
	}
	img.Registry = dockerhub.Canonical(img.Registry)
	img.Repository = dockerhub.Repository(img.Registry, img.Repository)
	if img.Tag == "" && img.Digest == "" {
		img.Tag = "latest"
	}
	switch {
	case !registryRe().MatchString(img.Registry):
		return img, fmt.Errorf("bad registry %q", img.Registry)
	case !oci.ValidRepository(img.Repository):
		return img, fmt.Errorf("bad repository %q (lower-case path components of letters and digits, separated by . _ __ or -)", img.Repository)
	case img.Tag != "" && !oci.ValidTag(img.Tag):
		return img, fmt.Errorf("bad tag %q", img.Tag)
	}
	return img, nil
}

// The reference grammar (distribution/reference) that image names from a
// cluster must follow before they become rules and mirror paths: the
// registry here; the repository and tag are oci's.
var registryRe = lazyRegexp(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)

// lazyRegexp compiles expr on first use: compiled in an init, the
// patterns of every package cost each run of the binary, a no-op's
// included, before its first request.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
