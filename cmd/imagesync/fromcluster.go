package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/kube"
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/rules"
)

// FromCluster takes the rules from what a Kubernetes cluster runs.
type FromCluster struct {
	FromCluster   bool   `name:"from-cluster" group:"Kubernetes" help:"Mirror what the cluster runs: the images of its Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs, instead of a rule file (needs --to)."`
	AllNamespaces bool   `name:"all-namespaces" short:"A" group:"Kubernetes" help:"With --from-cluster: every namespace, not just the current one."`
	To            string `placeholder:"REGISTRY[/PATH]" group:"Kubernetes" help:"With --from-cluster: the mirror; each image keeps its registry and repository path under it (MIRROR/docker.io/library/nginx)."`
	Flat          bool   `name:"flat" group:"Kubernetes" help:"With --from-cluster: each image at MIRROR/<repository path>, without its registry (MIRROR/library/nginx); images of two registries that would share a path are skipped."`
	WriteRules    string `name:"write-rules" type:"path" placeholder:"FILE" group:"Kubernetes" help:"With --from-cluster: also write the rules as an imagesync config file (for -f), for review and cron."`
}

// clusterRules lists the cluster's images and turns them into rules: each
// image to TARGET/<its registry>/<its repository path> (TARGET/<its
// repository path> with --flat), by digest where a pod resolved it (the tag
// is kept at the destination); images already under TARGET are left out.
// Image references that break the grammar, and (--flat) images of two
// registries that would share a path, are skipped with a warning naming
// namespace, workload and container: the rest is mirrored.
func (in *Inputs) clusterRules(rc *runContext, ropt rules.Options) ([]rules.Rule, []string, []kube.Skipped, error) {
	fc := &in.FromCluster
	if fc.To == "" {
		return nil, nil, nil, usageError("--from-cluster needs --to REGISTRY[/PATH], the mirror")
	}
	if in.Images != "" || in.Config != "" {
		return nil, nil, nil, usageError("--from-cluster takes the images from the cluster: drop --images/--config")
	}
	target := strings.TrimSuffix(fc.To, "/")
	last := target[strings.LastIndexByte(target, '/')+1:]
	if _, err := rules.ParseDestination(target + "/x"); err != nil || strings.Contains(target, "@") || strings.Contains(target, "/") && strings.Contains(last, ":") {
		return nil, nil, nil, usageError("--to %q: want a registry with an optional path, such as harbor.example.com/mirror", fc.To)
	}
	cfg, ns, err := in.access().Config()
	if err != nil {
		return nil, nil, nil, usageError("--from-cluster: %v", err)
	}
	if fc.AllNamespaces {
		ns = ""
	}
	ctx, cancel := context.WithTimeout(rc.ctx, 2*time.Minute)
	defer cancel()
	images, skipped, err := kube.ClusterImages(ctx, cfg, ns)
	if err != nil {
		return nil, nil, nil, &exitError{code: exitAllFailed, err: err}
	}
	var warnings []string
	type entry struct {
		from, to, dstRepo string
		img               kube.Image
	}
	var candidates []entry
	owners := map[string]map[string]bool{} // destination repository → source repositories
	for _, img := range images {
		if img.Registry+"/"+img.Repository == target || strings.HasPrefix(img.Registry+"/"+img.Repository, target+"/") {
			continue // pulled from the mirror already
		}
		dstRepo := target + "/" + mirrorHost(img.Registry) + "/" + img.Repository
		if fc.Flat {
			dstRepo = target + "/" + img.Repository
		}
		src := img.Registry + "/" + img.Repository
		if owners[dstRepo] == nil {
			owners[dstRepo] = map[string]bool{}
		}
		owners[dstRepo][src] = true
		e := entry{from: src, to: dstRepo, dstRepo: dstRepo, img: img}
		switch {
		case img.Digest != "" && img.Tag != "":
			e.from += "@" + img.Digest
			e.to += ":" + img.Tag
		case img.Digest != "":
			e.from += "@" + img.Digest
		default:
			e.from += ":" + img.Tag
		}
		candidates = append(candidates, e)
	}
	var entries []entry
	for _, e := range candidates {
		if len(owners[e.dstRepo]) > 1 {
			// Neither wins: which one would depends on who made a pod last.
			var others []string
			for o := range owners[e.dstRepo] {
				if o != e.img.Registry+"/"+e.img.Repository {
					others = append(others, o)
				}
			}
			sort.Strings(others)
			for _, c := range e.img.Containers {
				skipped = append(skipped, kube.Skipped{Container: c, Image: e.img.Name(), Reason: fmt.Sprintf("--flat puts it at %s, as %s", e.dstRepo, strings.Join(others, " and "))})
			}
			continue
		}
		entries = append(entries, e)
	}
	// Reported in the order of where they were found, whatever order the API server listed them in.
	sort.SliceStable(skipped, func(i, j int) bool {
		a, b := skipped[i], skipped[j]
		return fmt.Sprint(a.Kind, "\x00", a.Namespace, "\x00", a.Name, "\x00", a.Container.Container, "\x00", a.Image) <
			fmt.Sprint(b.Kind, "\x00", b.Namespace, "\x00", b.Name, "\x00", b.Container.Container, "\x00", b.Image)
	})
	for _, sk := range skipped {
		warnings = append(warnings, "--from-cluster: skipping "+sk.String())
	}
	if len(entries) == 0 {
		warnings = append(warnings, "--from-cluster: the cluster runs no image outside "+target)
	}
	// image-syncer's rule map, read by the usual loader.
	m := map[string][]string{}
	var order []string
	for _, e := range entries {
		if _, ok := m[e.from]; !ok {
			order = append(order, e.from)
		}
		m[e.from] = append(m[e.from], e.to)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, nil, err
	}
	n, err := cfgfile.Decode("from-cluster.json", b)
	if err != nil {
		return nil, nil, nil, err
	}
	rs, err := rules.FromNode("--from-cluster", n, ropt)
	if err != nil {
		return nil, nil, nil, &exitError{code: exitUsage, err: err}
	}
	if fc.WriteRules != "" {
		if err := writeNativeRules(fc.WriteRules, order, m, target, ns); err != nil {
			return nil, nil, nil, usageError("--write-rules: %v", err)
		}
	}
	return rs, warnings, skipped, nil
}

// mirrorHost is a registry as a path component of the mirror: lower case
// (host names are), a port after "_" ("127.0.0.1:5000" → "127.0.0.1_5000":
// a host name has no "_", so no two registries share one).
func mirrorHost(registry string) string {
	return strings.ReplaceAll(strings.ToLower(registry), ":", "_")
}

// writeNativeRules saves the rules as an imagesync config file (sync/config's writer).
func writeNativeRules(path string, order []string, m map[string][]string, target, ns string) error {
	where := "namespace " + ns
	if ns == "" {
		where = "all namespaces"
	}
	f := &config.NativeFile{Comments: []string{
		fmt.Sprintf("imagesync config file (imagesync sync -f %s): the images a Kubernetes cluster runs", path),
		fmt.Sprintf("(%s), mirrored to %s, by digest where a pod had resolved the tag.", where, target),
	}}
	for _, from := range order {
		f.Sync = append(f.Sync, config.Entry{From: from, To: m[from], List: true})
	}
	return f.WriteFile(path)
}
