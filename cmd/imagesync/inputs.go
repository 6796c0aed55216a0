package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/kube"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/imagesync/imagesync/sync/rules"
	"github.com/imagesync/imagesync/sync/shard"
)

// Inputs are the flags sync, plan and verify share: what to copy, with which
// credentials, how hard, and the ledger.
type Inputs struct {
	readOnlyLedger bool // plan: look the ledger up, write nothing
	procGiven      bool // --proc on the command line or in the file's defaults: a hard cap

	Auth    string `type:"path" placeholder:"FILE" help:"Auth file (.json, .yaml, .yml): registry[/namespace] → {username, password, insecure}."`
	Images  string `type:"path" placeholder:"FILE" help:"Rule file (.json, .yaml, .yml): source → destination(s). Required unless --config."`
	Config  string `type:"path" placeholder:"FILE" help:"image-syncer's legacy file with top-level auth: and images:; --auth and --images are then ignored."`
	Proc    int    `short:"p" default:"5" help:"Blob transfers in flight at once, a hard cap when given; by default the run starts at 8 and learns how many the link takes (up to --max-conns). Up to 4×N images are decided and copied at once."`
	Retries int    `short:"r" default:"2" help:"Extra attempts for a job that failed transiently."`

	File string `short:"f" name:"file" type:"path" placeholder:"FILE" help:"imagesync config file (.yaml, .yml, .json): defaults, registries and sync entries with tag, platform and referrer filters."`
	Selection

	MaxConns    int           `name:"max-conns" default:"32" help:"Requests in flight at once per registry host (a 429 paces the host instead: see the README)."`
	Rate        float64       `placeholder:"N" help:"At most N requests per second per registry host (default: no limit)."`
	PullReserve int           `name:"pull-reserve" aliases:"hub-reserve" default:"2" help:"Pulls kept for people (also --hub-reserve): from a registry that reports a pull quota (Docker Hub's ratelimit-remaining), fetch no manifest once this many pulls are left, and start no index whose children would eat into them."`
	Timeout     time.Duration `default:"2m" help:"Give up on a connection attempt, or on a request that makes no progress, after this long (no overall deadline)."`
	OS          []string      `name:"os" placeholder:"OS[:VERSION]" help:"Only images for these operating systems (repeatable or comma-separated)."`
	Arch        []string      `placeholder:"ARCH[:VARIANT]" help:"Only images for these architectures (repeatable or comma-separated)."`

	Registry  string `env:"DEFAULT_REGISTRY" help:"Registry for empty destinations (\"\"): R/<source repository path>, or with --default-namespace (--namespace) R/NAMESPACE/<repository after its first path component>."`
	Namespace string `name:"default-namespace" env:"DEFAULT_NAMESPACE" help:"Namespace for empty destinations (\"\"); also --namespace, except as kubectl imagesync."`

	DockerConfig string   `name:"docker-config" type:"path" placeholder:"DIR" help:"Folder of docker's config.json (default: $DOCKER_CONFIG, else ~/.docker): credentials from docker login, credsStore and credHelpers."`
	CAFile       []string `name:"ca-file" type:"path" placeholder:"FILE" help:"Trust this CA (PEM) for every registry, on top of the system's and docker's certs.d (repeatable)."`

	Sharding
	FromCluster
	KubeFlags

	Ledger   string `type:"path" placeholder:"FILE" env:"IMAGESYNC_LEDGER" help:"Digest ledger file (default: imagesync/ledger.db in the user cache directory)."`
	NoLedger bool   `help:"Run without a ledger: every decision asks the destination."`

	SkipInvalidRules bool `name:"skip-invalid-rules" help:"Report every invalid rule of the rule file (duplicate key, unset $VAR, tag-count mismatch, two rules writing one destination tag…), run the valid ones, and exit 1 at the end (default: refuse the whole file, exit 2)."`
}

// Validate rejects counts that cannot work, as usage errors (exit 2) before
// anything runs.
func (in *Inputs) Validate() error {
	switch {
	case in.Proc < 1:
		return fmt.Errorf("--proc %d: at least 1 image must be in flight", in.Proc)
	case in.Retries < 0:
		return fmt.Errorf("--retries %d: cannot be negative (0: no retry)", in.Retries)
	case in.MaxConns < 1:
		return fmt.Errorf("--max-conns %d: at least 1 request per registry must be allowed", in.MaxConns)
	case in.Rate < 0:
		return fmt.Errorf("--rate %v: cannot be negative (0: no limit)", in.Rate)
	case in.PullReserve < 0:
		return fmt.Errorf("--pull-reserve %d: cannot be negative", in.PullReserve)
	}
	return nil
}

// session is a loaded run: rules, credentials, logger, ledger, engine.
type session struct {
	rules    []rules.Rule
	keychain *credentials.Chain
	log      *slog.Logger
	out      io.Writer // redacted log output
	ledger   *ledger.Ledger
	client   *client.Client
	filter   engine.Filter
	skipped  []error // rules set aside by --skip-invalid-rules
	// clusterSkipped are the cluster's images --from-cluster left out.
	clusterSkipped []kube.Skipped
	aside          *rules.SetAside // --skip-invalid-rules for the engine; nil: strict
	console        *report.Console // logs, result lines, progress
	interrupt      <-chan struct{}
	closers        []func()
	// From a config file: per-host request limits, and its defaults
	// (config.Config.TrustLedger); nil for --from-cluster.
	hosts  map[string]client.HostPolicy
	config *config.Config
	shard  shard.Spec
}

func (s *session) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// open loads files, opens the log and the ledger. Every problem is a usage
// error (exit 2), and all file problems are reported at once.
func (in *Inputs) open(rc *runContext) (*session, error) {
	home := homeDir(rc.env)
	secrets := rc.secrets
	if secrets == nil {
		secrets = &credentials.SecretSet{}
	}
	dockerDir := in.DockerConfig
	if dockerDir == "" && rc.dockerConfigDir != "" {
		dockerDir = rc.dockerConfigDir // docker's own --config, when run as `docker sync`
	}
	if dockerDir == "" {
		dockerDir = credentials.DockerConfigDir(rc.env.lookup, home)
	}
	docker := &credentials.DockerConfig{Dir: dockerDir, Secrets: secrets}
	if err := docker.Check(); err != nil {
		return nil, usageError("%v", err)
	}
	s := &session{keychain: &credentials.Chain{
		Fallback: docker,
		CertDirs: credentials.DefaultCertDirs(home),
		CAFiles:  in.CAFile,
		Secrets:  secrets,
	}}
	ledgerPath := ""
	if !in.NoLedger {
		var err error
		if ledgerPath = in.Ledger; ledgerPath == "" {
			if ledgerPath, err = ledger.DefaultPath(); err != nil {
				return nil, usageError("%v", err)
			}
		}
		if rc.global.Log != "" && samePath(rc.global.Log, ledgerPath) {
			return nil, usageError("--log %s is the ledger: give the log another file", rc.global.Log)
		}
	}
	logOut, closeLog, err := openLog(rc)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, closeLog)
	// Logs, result lines and the progress display share one console, so a
	// log line never lands in the middle of the bar; everything it prints
	// is redacted (rc.stderr is a redactor).
	if rc.global.Log == "" && rc.console != nil {
		s.console = rc.console
	} else {
		s.console = report.NewConsole(credentials.NewRedactor(logOut, secrets), false, nil)
	}
	logOut = s.console
	warnings, skipped, err := in.load(rc, s)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.out = credentials.NewRedactor(logOut, secrets)
	s.log = newLogger(s.out, rc.global)
	docker.Warn = func(msg string) { s.log.Warn(msg) }
	for _, w := range warnings {
		s.log.Warn(w)
	}
	s.reportSkipped(rc, skipped)
	if s.filter, err = engine.ParseFilter(in.OS, in.Arch); err != nil {
		s.Close()
		return nil, usageError("%v", err)
	}
	if len(s.rules) == 0 {
		file := in.Images
		if in.Config != "" {
			file = in.Config
		}
		s.log.Warn("the rule file holds no rules", "file", file)
		s.Close()
		return nil, usageError("%s: no rules: nothing to do (is it the right file?)", file)
	}
	if in.NoLedger {
		for _, r := range s.rules {
			if r.MinAge > 0 {
				s.Close()
				return nil, usageError("--min-age (min-age:) counts from when the ledger first saw a digest: it cannot go with --no-ledger")
			}
		}
	}
	if !in.NoLedger {
		path := ledgerPath
		l, err := openLedger(rc, s, path, in.readOnlyLedger)
		if err != nil && in.readOnlyLedger && errors.Is(err, ledger.ErrLocked) {
			// plan beside a running sync: every decision asks the destination
			s.log.Warn("the ledger is in use by a running sync: planning without it", "ledger", path)
			err = nil
		}
		if err != nil {
			s.Close()
			return nil, usageError("%v", err)
		}
		l.Guard(secrets.Redact) // the ledger is an output too: no record holding a secret is written
		s.ledger = l
		s.closers = append(s.closers, func() {
			if err := l.Close(); err != nil {
				s.log.Error("closing the ledger", "error", err)
			}
		})
		for _, w := range l.Warnings() {
			s.log.Warn(w)
		}
		s.log.Debug("ledger", "path", path)
	}
	s.interrupt = rc.env.interrupt
	if s.shard, err = in.Sharding.spec(rc.env); err != nil {
		s.Close()
		return nil, usageError("%v", err)
	}
	s.client = client.New(s.keychain,
		client.WithLogger(s.log),
		client.WithSecrets(secrets),
		client.WithUserAgent("imagesync/"+version),
		client.WithTimeout(in.Timeout),
		client.WithHostPolicy(client.HostPolicy{MaxConns: in.MaxConns, Rate: in.Rate, PullReserve: in.PullReserve, Hosts: s.hosts}),
		client.WithObserver(rc.clientObserver))
	return s, nil
}

// autoTransfers is where the learned number of blob transfers starts
// without --proc.
const autoTransfers = 8

// engine builds the engine for this session.
func (s *session) engine(in *Inputs, opt engine.Options) *engine.Engine {
	opt.Concurrency = in.Proc
	if !in.procGiven {
		// Learn the transfers the link takes: more while the bytes moved
		// rise, fewer on retries (429s, 5xx, resets), within --max-conns.
		opt.Concurrency, opt.MaxTransfers = max(in.Proc, autoTransfers), max(in.MaxConns, autoTransfers)
	}
	opt.Retries = in.Retries
	opt.Filter = s.filter
	opt.Logger = s.log
	opt.Ledger = s.ledger
	opt.Stop = s.interrupt
	opt.SetAside = s.aside
	return engine.New(s.client, opt)
}

// load reads the rules and their settings (sync/config), or takes them
// from the cluster (--from-cluster).
func (in *Inputs) load(rc *runContext, s *session) (warnings []string, skipped rules.ErrorList, err error) {
	flags := in.configFlags(rc)
	if in.FromCluster.FromCluster {
		if in.File != "" || len(in.Refs) > 0 {
			return nil, nil, usageError("--from-cluster takes the images from the cluster: drop -f and the one-off images")
		}
		if in.SkipInvalidRules {
			s.aside = &rules.SetAside{}
		}
		s.rules, warnings, s.clusterSkipped, err = in.clusterRules(rc, flags.RulesOptions())
		return warnings, nil, err
	}
	cfg, err := config.Load(flags)
	if errors.Is(err, config.ErrNothingToDo) {
		return nil, nil, usageError("%s", nothingToDo(rc.personality.Name))
	}
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	if cfg.Auth != nil {
		s.keychain.AddFile(cfg.Auth)
	}
	s.config = cfg
	s.aside = cfg.SetAside
	s.rules = cfg.Rules
	s.hosts = cfg.Hosts
	in.Proc, in.Retries, in.MaxConns, in.Rate = cfg.Run.Proc, cfg.Run.Retries, cfg.Run.MaxConns, cfg.Run.Rate
	in.procGiven = cfg.Run.ProcGiven
	return cfg.Warnings, cfg.Skipped, nil
}

// exitFor maps finished jobs to DESIGN.md's exit codes.
func exitFor(failed, total int) error {
	switch {
	case failed == 0:
		return nil
	case failed == total:
		if failed == 1 {
			return &exitError{code: exitAllFailed, err: errors.New("the job failed")}
		}
		return &exitError{code: exitAllFailed, err: fmt.Errorf("all %d jobs failed", failed)}
	default:
		return &exitError{code: exitSomeFail, err: fmt.Errorf("%d of %d jobs failed", failed, total)}
	}
}

// homeDir is the user's home folder as the given environment says.
func homeDir(e env) string {
	for _, k := range []string{"HOME", "USERPROFILE"} {
		if v, ok := e.lookup(k); ok && v != "" {
			return v
		}
	}
	h, _ := os.UserHomeDir()
	return h
}

// progressOptions decide between a live bar and plain lines: a bar only
// when the log goes to a terminal that takes ANSI sequences (not TERM=dumb).
func progressOptions(rc *runContext) report.ProgressOptions {
	live := rc.global.Log == "" && rc.console.Live()
	_, noColor := rc.env.lookup("NO_COLOR")
	json := rc.global.LogFormat == "json" // every line a JSON object: no bar, no colors
	return report.ProgressOptions{
		Bar:   live && !rc.global.NoProgress && !json,
		Color: live && !noColor && !json,
		Quiet: rc.global.Quiet,
		JSON:  json,
	}
}

// samePath reports whether two paths name the same file (symlinks resolved),
// whether or not it exists yet.
func samePath(a, b string) bool {
	ra, errA := ledger.ResolvePath(a)
	rb, errB := ledger.ResolvePath(b)
	if errA == nil && errB == nil && ra == rb {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
