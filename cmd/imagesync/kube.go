package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/kube"
	"github.com/imagesync/imagesync/plugin"
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/imagesync/imagesync/sync/rules"
	"github.com/imagesync/imagesync/sync/shard"
)

// KubeFlags are kubectl's connection flags, for the commands that talk to a
// cluster. As `kubectl imagesync` the namespace flag is kubectl's
// -n/--namespace; as imagesync and docker sync it is --kube-namespace, since
// --namespace keeps image-syncer's meaning there (see kubeNamespaceFlags).
type KubeFlags struct {
	Kubeconfig    string `name:"kubeconfig" type:"path" placeholder:"FILE" group:"Kubernetes" help:"kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; in a pod: its service account)."`
	KubeContext   string `name:"context" placeholder:"NAME" group:"Kubernetes" help:"kubeconfig context to use."`
	KubeCluster   string `name:"cluster" placeholder:"NAME" group:"Kubernetes" help:"kubeconfig cluster to use."`
	KubeUser      string `name:"user" placeholder:"NAME" group:"Kubernetes" help:"kubeconfig user to use."`
	KubeServer    string `name:"server" placeholder:"URL" group:"Kubernetes" help:"Kubernetes API server address (overrides the kubeconfig's)."`
	KubeNamespace string `name:"kube-namespace" placeholder:"NS" group:"Kubernetes" help:"Kubernetes namespace (default: the context's)."`
}

func (k *KubeFlags) access() kube.Access {
	return kube.Access{Kubeconfig: k.Kubeconfig, Context: k.KubeContext, Cluster: k.KubeCluster, User: k.KubeUser, Namespace: k.KubeNamespace, Server: k.KubeServer}
}

// kubeNamespaceFlags gives the namespace flags their names for the
// personality: as `kubectl imagesync`, -n/--namespace is kubectl's (the
// Kubernetes namespace); elsewhere --namespace stays image-syncer's default
// destination namespace (-n too), also called --default-namespace everywhere.
func kubeNamespaceFlags(p plugin.Personality) kong.Option {
	kubectl := p.Kind == plugin.Kubectl || p.Kind == plugin.KubectlComplete
	return kong.PostBuild(func(k *kong.Kong) error {
		return kong.Visit(k.Model, func(n kong.Visitable, next kong.Next) error {
			if f, ok := n.(*kong.Flag); ok {
				switch {
				case kubectl && f.Name == "kube-namespace":
					f.Name, f.Short = "namespace", 'n'
				case !kubectl && f.Name == "default-namespace":
					f.Aliases = append(f.Aliases, "namespace")
					f.Short = 'n' // image-syncer's -n (the README's table)
				}
			}
			return next(nil)
		})
	})
}

// Sharding picks one shard of the expanded jobs.
type Sharding struct {
	Shard  string `placeholder:"I/N" group:"Sharding" help:"Run only shard I of N (0-based): a deterministic part of the jobs, whole destination repositories."`
	Shards int    `placeholder:"N" env:"IMAGESYNC_SHARDS" group:"Sharding" help:"Split the jobs into N shards and run the one JOB_COMPLETION_INDEX names (as a Kubernetes Indexed Job sets it)."`
}

// spec resolves --shard, --shards and JOB_COMPLETION_INDEX.
func (s *Sharding) spec(e env) (shard.Spec, error) {
	switch {
	case s.Shard != "" && s.Shards != 0:
		return shard.Spec{}, fmt.Errorf("--shard and --shards: give one of them")
	case s.Shard != "":
		sp, err := shard.Parse(s.Shard)
		if err != nil {
			return shard.Spec{}, fmt.Errorf("--shard: %w", err)
		}
		return sp, nil
	case s.Shards != 0:
		v, ok := e.lookup("JOB_COMPLETION_INDEX")
		if !ok || v == "" {
			return shard.Spec{}, fmt.Errorf("--shards %d: JOB_COMPLETION_INDEX is not set (give --shard I/%d outside an Indexed Job)", s.Shards, s.Shards)
		}
		i, err := strconv.Atoi(v)
		if err != nil {
			return shard.Spec{}, fmt.Errorf("JOB_COMPLETION_INDEX=%q: not a number", v)
		}
		sp, err := shard.New(i, s.Shards)
		if err != nil {
			return shard.Spec{}, fmt.Errorf("--shards %d with JOB_COMPLETION_INDEX=%d: %w", s.Shards, i, err)
		}
		return sp, nil
	}
	return shard.Spec{}, nil
}

// selectShard keeps this run's shard of the jobs and of the failed listings.
func (s *session) selectShard(jobs []rules.Job, failed []engine.JobResult) ([]rules.Job, []engine.JobResult) {
	if !s.shard.Enabled() {
		return jobs, failed
	}
	all := append(append([]rules.Job(nil), jobs...), make([]rules.Job, len(failed))...)
	for i, f := range failed {
		all[len(jobs)+i] = f.Job
	}
	assign := shard.Assign(all, s.shard.Count)
	var kj []rules.Job
	var kf []engine.JobResult
	for i, sh := range assign {
		if sh != s.shard.Index {
			continue
		}
		if i < len(jobs) {
			kj = append(kj, jobs[i])
		} else {
			kf = append(kf, failed[i-len(jobs)])
		}
	}
	s.log.Info("shard", "shard", s.shard.String(), "jobs", len(kj)+len(kf), "of", len(all))
	return kj, kf
}

// JobCmd is `kubectl imagesync job`: the objects of a sharded run.
type JobCmd struct {
	KubeFlags
	File   string `short:"f" name:"file" type:"existingfile" placeholder:"FILE" help:"imagesync config file (.yaml, .yml, .json) the shards run with -f."`
	Images string `type:"existingfile" placeholder:"FILE" help:"image-syncer rule file the shards run with --images (credentials come from --docker-config-secret)."`

	Name                 string `default:"imagesync" help:"Name of the Job (or CronJob), its ServiceAccount, Role and ConfigMaps."`
	Shards               int    `default:"4" help:"Shards: the Job's completions and parallelism; each pod copies one shard."`
	BackoffLimitPerIndex int    `name:"backoff-limit-per-index" default:"2" help:"Retries of one shard's pod before that shard counts as failed."`
	MetricsPort          int    `name:"metrics-port" placeholder:"PORT" help:"Each pod serves Prometheus metrics on PORT while it runs (sync --metrics-addr :PORT), with prometheus.io/scrape, port and path pod annotations."`
	Schedule             string `placeholder:"CRON" help:"Make a CronJob with this schedule (\"0 3 * * *\") instead of a Job."`
	Image                string `placeholder:"IMAGE" help:"Container image with imagesync on its PATH (default: a release's own image, ghcr.io/imagesync/imagesync:<version>; required with a build that is not a release)."`
	DockerConfigSecret   string `name:"docker-config-secret" placeholder:"SECRET" help:"Secret (type kubernetes.io/dockerconfigjson) with the registries' credentials, mounted as the pods' docker config.json."`
	Apply                bool   `help:"Create or update the objects through the current kubeconfig instead of printing them."`
}

// Run implements `imagesync job`.
func (c *JobCmd) Run(rc *runContext) error {
	var files []kube.RunFile
	add := func(flag, path string) error {
		ext := strings.ToLower(filepath.Ext(path))
		if ext != ".yaml" && ext != ".yml" && ext != ".json" {
			return usageError("%s %s: want a .yaml, .yml or .json file", flag, path)
		}
		if _, err := cfgfile.Load(path); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return usageError("%s: %v", flag, err)
		}
		files = append(files, kube.RunFile{Flag: flag, Name: strings.TrimPrefix(flag, "--") + ext, Data: b})
		return nil
	}
	if c.File != "" {
		cfg, err := config.LoadNative(c.File, rules.Options{LookupEnv: rc.env.lookup})
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		if cfg.AuthFile != "" {
			return usageError("%s:%d: the auth file %s is not copied into the cluster: keep the credentials in the Secret of --docker-config-secret", c.File, cfg.AuthFileLine, cfg.AuthFile)
		}
		if err := add("-f", c.File); err != nil {
			return err
		}
	}
	if c.Images != "" {
		// The pods have no DEFAULT_REGISTRY: a "" destination is an error here already.
		if _, err := rules.LoadFile(c.Images, rules.Options{LookupEnv: rc.env.lookup}); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		if err := add("--images", c.Images); err != nil {
			return err
		}
	}
	for i := range files {
		if files[i].Flag == "-f" {
			files[i].Name = "imagesync" + filepath.Ext(c.File)
		}
	}
	if c.Image == "" {
		if releaseImage == "" {
			return usageError("--image: this imagesync (version %s) is not a release build and has no container image of its own: give --image IMAGE, an image with imagesync on its PATH (a release's is %s:<version>; mirror it into a registry the cluster can pull from)", version, releaseRepository)
		}
		c.Image = releaseImage
	}
	spec := kube.JobSpec{
		Name: c.Name, Image: c.Image, Shards: c.Shards, BackoffLimitPerIndex: c.BackoffLimitPerIndex,
		Schedule: c.Schedule, Files: files, DockerConfigSecret: c.DockerConfigSecret, MetricsPort: c.MetricsPort,
	}
	if err := spec.Validate(); err != nil {
		return usageError("%v", err)
	}
	cfg, ns, err := c.access().Config()
	if err != nil {
		if c.Apply {
			return usageError("%v", err)
		}
		ns = c.KubeNamespace // printing only: no kubeconfig needed
	}
	if ns == "" {
		ns = "default"
	}
	if why := kube.CheckNamespace(ns); why != "" {
		flag := "--kube-namespace"
		if rc.personality.Kind == plugin.Kubectl {
			flag = "-n/--namespace"
		}
		if c.KubeNamespace == "" {
			flag = "the kubeconfig context's namespace"
		}
		return usageError("%s %q: %s", flag, ns, why)
	}
	spec.Namespace = ns
	objs := spec.Objects()
	if !c.Apply {
		return kube.WriteYAML(rc.stdout, objs)
	}
	ctx, cancel := context.WithTimeout(rc.ctx, 2*time.Minute)
	defer cancel()
	return kube.Apply(ctx, cfg, objs, func(kind, name, what string) {
		fmt.Fprintf(rc.stdout, "%s/%s %s\n", kind, name, what)
	})
}

// StatusCmd is `kubectl imagesync status JOB`: the shards' results together.
type StatusCmd struct {
	KubeFlags
	Job    string `arg:"" default:"imagesync" help:"Name of the Job (or CronJob) given to job --name."`
	Output string `short:"o" enum:"text,json" default:"text" help:"Output: ${enum}."`
}

// statusJSON is `status -o json`.
type statusJSON struct {
	Job           string           `json:"job"`
	Shards        int              `json:"shards"`
	Reported      []int            `json:"reported"`
	Missing       []int            `json:"missing"`
	Jobs          int              `json:"jobs"`
	Failed        []report.SyncJob `json:"failed"`
	FailedOmitted int              `json:"failedOmitted,omitempty"`
	Summary       any              `json:"summary"`
	Problems      []string         `json:"problems,omitempty"`
}

// Run implements `imagesync status`.
func (c *StatusCmd) Run(rc *runContext) error {
	cfg, ns, err := c.access().Config()
	if err != nil {
		return usageError("%v", err)
	}
	ctx, cancel := context.WithTimeout(rc.ctx, time.Minute)
	defer cancel()
	st, err := kube.ReadStatus(ctx, cfg, ns, c.Job)
	if err != nil {
		return err
	}
	if st.Shards == 0 {
		return &exitError{code: exitAllFailed, err: fmt.Errorf("no shard of %s has reported in namespace %s (ConfigMaps %s)", c.Job, ns, kube.ShardConfigMap(c.Job, 0)+", …")}
	}
	if c.Output == "json" {
		enc := json.NewEncoder(rc.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(statusJSON{Job: st.Job, Shards: st.Shards, Reported: nonNil(st.Reported), Missing: nonNil(st.Missing), Jobs: st.Jobs,
			Failed: st.Summary.Jobs, FailedOmitted: st.FailedOmitted, Summary: st.Summary.Summary, Problems: st.Problems}); err != nil {
			return err
		}
	} else {
		s := st.Summary.Summary
		fmt.Fprintf(rc.stdout, "%s: %d of %d shards reported", st.Job, len(st.Reported), st.Shards)
		if len(st.Missing) > 0 {
			fmt.Fprintf(rc.stdout, " (waiting for %s)", joinInts(st.Missing))
		}
		fmt.Fprintln(rc.stdout)
		report.Summary(rc.stdout, engine.Summary{Copied: s.Copied, Skipped: s.Skipped, Filtered: s.Filtered, Failed: s.Failed,
			Bytes: s.Bytes, BlobsUploaded: s.BlobsUploaded, BlobsMounted: s.BlobsMounted, Requests: s.Requests, Retries: s.Retries,
			Duration: time.Duration(s.Seconds * float64(time.Second))})
		for _, j := range st.Summary.Jobs {
			fmt.Fprintf(rc.stdout, "failed %s → %s: %s\n", j.Source, j.Destination, j.Error)
		}
		if st.FailedOmitted > 0 {
			fmt.Fprintf(rc.stdout, "… and %d more failed jobs (see the shards' logs)\n", st.FailedOmitted)
		}
		for _, p := range st.Problems {
			fmt.Fprintf(rc.stderr, "%s: %s\n", rc.personality.Name, p)
		}
	}
	if len(st.Missing) > 0 {
		return &exitError{code: exitSomeFail, err: fmt.Errorf("shards %s of %s have not reported", joinInts(st.Missing), c.Job)}
	}
	return exitFor(st.Summary.Summary.Failed, st.Jobs)
}

func nonNil(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// writeKubeReport writes this shard's result for `status`.
func (c *SyncCmd) writeKubeReport(rc *runContext, s *session, res *engine.Result) error {
	cfg, ns, err := c.access().Config()
	if err != nil {
		return err
	}
	count, index := max(1, s.shard.Count), s.shard.Index
	r := kube.NewShardReport(c.KubeReport, index, count, report.NewSyncReport(res))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rc.ctx), time.Minute)
	defer cancel()
	return kube.WriteShardReport(ctx, cfg, ns, r)
}

// exitCode is the code an error from a command exits with.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if xe, ok := err.(*exitError); ok {
		return xe.code
	}
	return exitAllFailed
}

// releaseImage is the container image a release build runs in `job`'s
// pods: its own version of ghcr.io/imagesync/imagesync, which the release
// publishes (.goreleaser.yaml, kos). goreleaser sets it for releases
// (-ldflags "-X main.releaseImage=…"); other builds (go build, make build,
// snapshots) leave it empty, and `job` then requires --image: no pod should
// pull a tag that was never published.
var releaseImage = ""

// releaseRepository is where releases publish the image (for messages).
const releaseRepository = "ghcr.io/imagesync/imagesync"
