package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	To            string `placeholder:"REGISTRY[/PATH]" group:"Kubernetes" help:"With --from-cluster: the mirror; each image keeps its repository path under it."`
	WriteRules    string `name:"write-rules" type:"path" placeholder:"FILE" group:"Kubernetes" help:"With --from-cluster: also write the rules as an imagesync config file (for -f), for review and cron."`
}

// clusterRules lists the cluster's images and turns them into rules: each
// image to TARGET/<its repository path>, by digest where a pod resolved it
// (the tag is kept at the destination); images already under TARGET are
// skipped.
func (in *Inputs) clusterRules(rc *runContext, ropt rules.Options) ([]rules.Rule, []string, error) {
	fc := &in.FromCluster
	if fc.To == "" {
		return nil, nil, usageError("--from-cluster needs --to REGISTRY[/PATH], the mirror")
	}
	if in.Images != "" || in.Config != "" {
		return nil, nil, usageError("--from-cluster takes the images from the cluster: drop --images/--config")
	}
	target := strings.TrimSuffix(fc.To, "/")
	last := target[strings.LastIndexByte(target, '/')+1:]
	if _, err := rules.ParseDestination(target + "/x"); err != nil || strings.Contains(target, "@") || strings.Contains(target, "/") && strings.Contains(last, ":") {
		return nil, nil, usageError("--to %q: want a registry with an optional path, such as harbor.example.com/mirror", fc.To)
	}
	cfg, ns, err := in.access().Config()
	if err != nil {
		return nil, nil, usageError("--from-cluster: %v", err)
	}
	if fc.AllNamespaces {
		ns = ""
	}
	ctx, cancel := context.WithTimeout(rc.ctx, 2*time.Minute)
	defer cancel()
	images, err := kube.ClusterImages(ctx, cfg, ns)
	if err != nil {
		return nil, nil, &exitError{code: exitAllFailed, err: err}
	}
	var warnings []string
	type entry struct{ from, to string }
	var entries []entry
	owner := map[string]string{} // destination repository → source repository
	for _, img := range images {
		if img.Registry+"/"+img.Repository == target || strings.HasPrefix(img.Registry+"/"+img.Repository, target+"/") {
			continue // pulled from the mirror already
		}
		dstRepo := target + "/" + img.Repository
		src := img.Registry + "/" + img.Repository
		if o, ok := owner[dstRepo]; ok && o != src {
			return nil, nil, usageError("--from-cluster: %s and %s would both go to %s: mirror them with a rule file", o, src, dstRepo)
		}
		owner[dstRepo] = src
		e := entry{from: src, to: dstRepo}
		switch {
		case img.Digest != "" && img.Tag != "":
			e.from += "@" + img.Digest
			e.to += ":" + img.Tag
		case img.Digest != "":
			e.from += "@" + img.Digest
		default:
			e.from += ":" + img.Tag
		}
		entries = append(entries, e)
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
		return nil, nil, err
	}
	n, err := cfgfile.Decode("from-cluster.json", b)
	if err != nil {
		return nil, nil, err
	}
	rs, err := rules.FromNode("--from-cluster", n, ropt)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	if fc.WriteRules != "" {
		if err := writeNativeRules(fc.WriteRules, order, m, target, ns); err != nil {
			return nil, nil, usageError("--write-rules: %v", err)
		}
	}
	return rs, warnings, nil
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
