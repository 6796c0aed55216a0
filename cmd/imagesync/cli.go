package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/alecthomas/kong"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/plugin"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/report"
)

// Exit codes (see the README).
const (
	exitOK          = 0
	exitSomeFail    = 1
	exitUsage       = 2
	exitAllFailed   = 3
	exitPending     = 4   // plan --detailed-exitcode: work to do
	exitInterrupted = 130 // SIGINT/SIGTERM: 128 + 2
)

// env is the process environment as the CLI sees it (tests pass their own).
type env struct {
	lookup    func(string) (string, bool)
	interrupt <-chan struct{} // closed on the first SIGINT/SIGTERM; nil: never
}

func (e env) interrupted() bool {
	select {
	case <-e.interrupt:
		return true
	default:
		return false
	}
}

// Globals are flags every subcommand takes.
type Globals struct {
	Debug      bool   `help:"Log every registry request (method, URL without query, status, duration); credentials are never logged."`
	LogFormat  string `name:"log-format" enum:"text,json" default:"text" help:"Log format on stderr: ${enum}."`
	Log        string `name:"log" type:"path" placeholder:"FILE" help:"Write logs and per-image lines to FILE (truncated each run) instead of stderr."`
	Quiet      bool   `short:"q" help:"Print errors and the summary only."`
	NoProgress bool   `name:"no-progress" help:"No progress bar, even on a terminal: periodic plain lines instead."`
	Version    bool   `name:"version" help:"Print the version and exit (as the version command does)."`
}

// CLI is the command tree.
type CLI struct {
	Globals

	Sync       SyncCmd       `cmd:"" default:"withargs" aliases:"copy,cp" help:"Copy images as the rule file says, or one: SRC DST (the default command; also copy, cp)."`
	Plan       PlanCmd       `cmd:"" help:"Show what sync would do, writing nothing: copy, update, skip, filtered or error per image, with bytes."`
	Verify     VerifyCmd     `cmd:"" help:"Check that every destination holds the source's digest, every child manifest and every blob."`
	Convert    ConvertCmd    `cmd:"" help:"Print the imagesync config file equivalent to image-syncer's --images and --auth files."`
	Job        JobCmd        `cmd:"" help:"Print (or --apply) a Kubernetes Indexed Job that runs sync in N shards, with its ConfigMap, ServiceAccount and RBAC."`
	Status     StatusCmd     `cmd:"" help:"Add up the results the shards of a Kubernetes job wrote: summary, failed images, exit code."`
	Ledger     LedgerCmd     `cmd:"" help:"Look into the digest ledger: export (JSON lines) or stats."`
	Version    VersionCmd    `cmd:"" help:"Print the version."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script: bash, zsh, fish or powershell."`
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run implements the command.
func (VersionCmd) Run(rc *runContext) error {
	fmt.Fprintf(rc.stdout, "%s %s", rc.personality.Name, version)
	if commit != "" {
		fmt.Fprintf(rc.stdout, " (%s)", commit)
	}
	fmt.Fprintf(rc.stdout, " %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// runContext is what every command's Run receives.
type runContext struct {
	ctx    context.Context
	env    env
	stdout io.Writer
	stderr io.Writer
	global *Globals
	// secrets holds every secret the run learns; stdout, stderr, --log and
	// report files are written through one redactor fed by it.
	secrets *credentials.SecretSet
	// dockerConfigDir is the Docker CLI's global --config, when imagesync
	// runs as the `docker sync` plugin.
	dockerConfigDir string
	personality     plugin.Personality
	console         *report.Console // stderr, shared by logs and the progress display
	stdoutCols      func() int      // the width of stdout when it is a terminal, else 0
	// explicit holds the long names of the flags given on the command line
	// (a config file's defaults yield to them).
	explicit map[string]bool
	// waiting is set while watch mode waits between runs: a signal then
	// ends the process at once, with exit 0 (see errStoppedWaiting).
	waiting *atomic.Bool
	// clientObserver, when set, hears about every registry request (sync's
	// --metrics-addr).
	clientObserver client.Observer
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

type kongExit int

const helpText = `Copy container images between registries, many to many, through memory and the network only.

Reads AliyunContainerService/image-syncer's auth and images files unchanged.

Examples:
  imagesync --auth auth.json --images images.json
  imagesync sync --auth auth.yaml --images images.yaml --proc 8 --retries 2
  imagesync --config config.yaml                 # image-syncer's legacy file with auth: and images:
  imagesync --images images.yaml --arch amd64,arm64 --output-failed-images failed.yaml`

// run parses args and runs the command; it returns the exit code. args[0]
// decides the personality: imagesync, docker-sync (`docker sync`) or
// kubectl-imagesync (`kubectl imagesync`).
func run(ctx context.Context, args []string, e env, stdout, stderr io.Writer) (code int) {
	// One redactor over every output: whatever secret the run learns later
	// (auth files, docker config, helpers, tokens) is scrubbed from all of
	// it, and no URL is printed with its query string.
	secrets := &credentials.SecretSet{}
	terminal, rawStdout := stderr, stdout
	stdout, stderr = credentials.NewRedactor(stdout, secrets), credentials.NewRedactor(stderr, secrets)
	p := plugin.Personality{Kind: plugin.Standalone, Name: "imagesync"}
	if len(args) > 0 {
		p = plugin.Detect(args[0])
		args = args[1:]
	}
	dockerConfigDir := ""
	switch p.Kind {
	case plugin.Docker:
		if len(args) > 0 && args[0] == plugin.MetadataCommand {
			_, _ = stdout.Write(plugin.DockerMetadata(version))
			return exitOK
		}
		if len(args) > 1 && args[0] == plugin.CompleteCommand && args[1] == "sync" {
			args = append([]string{plugin.CompleteCommand}, args[2:]...)
			break
		}
		d, err := plugin.SplitDockerArgs(args, "sync")
		if err != nil {
			fmt.Fprintf(stderr, "docker sync: %v\n", err)
			return exitUsage
		}
		args, dockerConfigDir = d.Args, d.ConfigDir
		if d.Help {
			args = append(args, "--help")
		}
		if d.Debug {
			args = append([]string{"--debug"}, args...)
		}
	case plugin.KubectlComplete:
		args = append([]string{plugin.CompleteCommand}, args...)
	}

	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name(p.Name),
		kong.Description(strings.ReplaceAll(helpText, "imagesync ", p.Name+" ")),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit(c)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Help(helpPrinter),
		kong.Resolvers(envResolver(e)),
		kong.Vars{"name": p.Name},
		kong.NamedMapper("imagesformat", imagesFormatMapper),
		kubeNamespaceFlags(p),
	)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return exitUsage
	}
	if len(args) > 0 && args[0] == plugin.CompleteCommand {
		writeCompletions(stdout, parser.Model, args[1:])
		return exitOK
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(c)
			if code != 0 {
				code = exitUsage
			}
		}
	}()
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: %s\n", p.Name, nothingToDo(p.Name))
		return exitUsage
	}
	args = splitShortValues(parser.Model, helpArgs(args))
	args, dryRun := dryRunAsPlan(parser.Model, args)
	if err := misuse(parser.Model, p.Name, args); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return exitUsage
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && stoppedAtCommand(pe.Context, args) {
			// `imagesync ledger`: the command's help, not the parser's words alone
			fmt.Fprintln(stderr)
			pe.Context.Stdout = stderr
			_ = pe.Context.PrintUsage(false)
		}
		return exitUsage
	}
	if err := oneOffInputs(&cli); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return exitUsage
	}
	if dryRun {
		fmt.Fprintf(stderr, "%s: --dry-run: running %s plan, which shows what sync would do and writes nothing\n", p.Name, p.Name)
	}
	if cli.Globals.Version {
		_ = VersionCmd{}.Run(&runContext{stdout: stdout, personality: p})
		return exitOK
	}
	console := newConsole(stderr, terminal, e) // stderr is redacted; terminal is the real one
	ran, noticed := make(chan struct{}), make(chan struct{})
	var waiting atomic.Bool
	go func() { // the Ctrl-C message, on a line of its own above any bar
		defer close(noticed)
		select {
		case <-e.interrupt:
		case <-ran:
			if !e.interrupted() {
				return
			}
		}
		if waiting.Load() {
			return // watch mode between runs: nothing in flight, it just ends
		}
		msg := p.Name + ": interrupted: stopping the transfers in flight (press Ctrl-C again to quit at once)"
		if cli.Globals.LogFormat == "json" {
			msg = report.LogLine("WARN", msg, nil)
		}
		console.Notice(msg)
	}()
	// The last word, in the log's format: with --log-format json every
	// line on stderr is a JSON object.
	say := func(err error) {
		if cli.Globals.LogFormat == "json" {
			fmt.Fprintln(stderr, report.LogLine("ERROR", p.Name+": "+err.Error(), nil))
			return
		}
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
	}
	explicit := map[string]bool{}
	for _, pe := range kctx.Path {
		if pe.Flag != nil {
			explicit[pe.Flag.Name] = true
		}
	}
	err = kctx.Run(&runContext{ctx: ctx, env: e, stdout: stdout, stderr: stderr, secrets: secrets, global: &cli.Globals, dockerConfigDir: dockerConfigDir, personality: p, console: console, explicit: explicit, waiting: &waiting, stdoutCols: terminalCols(rawStdout)})
	close(ran)
	<-noticed
	console.Close()
	if errors.Is(err, errStoppedWaiting) {
		return exitOK
	}
	if e.interrupted() {
		if err != nil {
			say(err)
		}
		return exitInterrupted
	}
	if err == nil {
		return exitOK
	}
	var xe *exitError
	if errors.As(err, &xe) {
		if xe.err != nil {
			say(xe.err)
		}
		return xe.code
	}
	say(err)
	return exitAllFailed
}

// envResolver lets flags with an `env` tag read the environment given to run
// (os.LookupEnv in main), so tests do not have to change the process's.
func envResolver(e env) kong.ResolverFunc {
	return func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range flag.Envs {
			if v, ok := e.lookup(name); ok && v != "" {
				return v, nil
			}
		}
		return nil, nil
	}
}
