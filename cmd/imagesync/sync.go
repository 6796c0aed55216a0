package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/engine/registry"
	"github.com/imagesync/imagesync/sync/report"
	"github.com/imagesync/imagesync/sync/rules"
)

// SyncCmd is `imagesync sync`, with image-syncer's flags.
type SyncCmd struct {
	Auth    string   `type:"path" placeholder:"FILE" help:"Auth file (.json, .yaml, .yml): registry[/namespace] → {username, password, insecure}."`
	Images  string   `type:"path" placeholder:"FILE" help:"Rule file (.json, .yaml, .yml): source → destination(s). Required unless --config."`
	Config  string   `type:"path" placeholder:"FILE" help:"image-syncer's legacy file with top-level auth: and images:; --auth and --images are then ignored."`
	Proc    int      `short:"p" default:"5" help:"Images and blob transfers in flight at once."`
	Retries int      `short:"r" default:"2" help:"Extra attempts for a job that failed transiently."`
	OS      []string `name:"os" placeholder:"OS[:VERSION]" help:"Only copy images for these operating systems (repeatable or comma-separated)."`
	Arch    []string `placeholder:"ARCH[:VARIANT]" help:"Only copy images for these architectures (repeatable or comma-separated)."`
	Force   bool     `help:"Push manifests even when the destination already has the digest."`

	OutputSuccessImages string `type:"path" placeholder:"FILE" help:"Write the images now in sync (copied or already there), in the images-file shape."`
	OutputFailedImages  string `type:"path" placeholder:"FILE" help:"Write the failed images: source → destination → reason."`
	OutputImagesFormat  string `enum:"json,yaml" default:"yaml" help:"Format of the output image files: ${enum}."`

	Registry  string `env:"DEFAULT_REGISTRY" help:"Registry for empty destinations (\"\")."`
	Namespace string `env:"DEFAULT_NAMESPACE" help:"Namespace for empty destinations (\"\")."`
}

// Run implements `imagesync sync`.
func (c *SyncCmd) Run(rc *runContext) error {
	logOut, closeLog, err := openLog(rc)
	if err != nil {
		return err
	}
	defer closeLog()

	in, err := c.load(rc)
	if err != nil {
		return err
	}
	out := credentials.NewRedactor(logOut, in.keychain.Secrets())
	log := newLogger(out, rc.global)
	for _, w := range in.warnings {
		log.Warn(w)
	}
	filter, err := engine.ParseFilter(c.OS, c.Arch)
	if err != nil {
		return usageError("%v", err)
	}

	client := registry.New(in.keychain, registry.WithLogger(log), registry.WithUserAgent("imagesync/"+version))
	printer := report.NewPrinter(out)
	eng := engine.New(client, engine.Options{
		Concurrency: c.Proc,
		Retries:     c.Retries,
		Force:       c.Force,
		Filter:      filter,
		Logger:      log,
		OnResult:    printer.Result,
	})
	jobs, failed, err := eng.Expand(rc.ctx, in.rules)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	res := eng.Sync(rc.ctx, jobs, failed)

	summaryOut := io.Writer(rc.stderr)
	if rc.global.Log != "" {
		summaryOut = io.MultiWriter(rc.stderr, logOut)
	}
	report.Summary(credentials.NewRedactor(summaryOut, in.keychain.Secrets()), res.Summary)

	if c.OutputSuccessImages != "" {
		if err := report.WriteFile(c.OutputSuccessImages, c.OutputImagesFormat, report.SuccessImages(res.Jobs)); err != nil {
			log.Error("writing success images", "error", err)
		}
	}
	if c.OutputFailedImages != "" {
		if err := report.WriteFile(c.OutputFailedImages, c.OutputImagesFormat, report.FailedImages(res.Jobs)); err != nil {
			log.Error("writing failed images", "error", err)
		}
	}
	return exitFor(rc.ctx, res)
}

// exitFor maps a run to DESIGN.md's exit codes.
func exitFor(ctx context.Context, res *engine.Result) error {
	s := res.Summary
	switch {
	case s.Failed == 0:
		return nil
	case s.Failed == len(res.Jobs):
		return &exitError{code: exitAllFailed, err: fmt.Errorf("every one of %d jobs failed", s.Failed)}
	default:
		return &exitError{code: exitSomeFail, err: fmt.Errorf("%d of %d jobs failed", s.Failed, len(res.Jobs))}
	}
}

type inputs struct {
	rules    []rules.Rule
	keychain *credentials.Chain
	warnings []string
}

// load reads the auth and rule files; every problem is a usage error (exit 2)
// and all of them are reported at once.
func (c *SyncCmd) load(rc *runContext) (*inputs, error) {
	in := &inputs{keychain: &credentials.Chain{}}
	ropt := rules.Options{DefaultRegistry: c.Registry, DefaultNamespace: c.Namespace, LookupEnv: rc.env.lookup}
	var errs []error
	switch {
	case c.Config != "":
		if c.Auth != "" || c.Images != "" {
			in.warnings = append(in.warnings, "--config is given: --auth and --images are ignored")
		}
		n, err := cfgfile.Load(c.Config)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		if n.Kind != cfgfile.Map {
			return nil, usageError("%s: the config file must be a map with auth: and images:", c.Config)
		}
		for _, kv := range n.Map {
			if kv.Key != "auth" && kv.Key != "images" {
				in.warnings = append(in.warnings, fmt.Sprintf("%s:%d: unknown top-level key %q ignored", c.Config, kv.Line, kv.Key))
			}
		}
		authNode, _ := n.Get("auth")
		af, err := credentials.AuthFromNode(c.Config, authNode, rc.env.lookup)
		if err != nil {
			errs = append(errs, err)
		} else {
			in.keychain.Files = append(in.keychain.Files, af)
			in.warnings = append(in.warnings, af.Warnings...)
		}
		imagesNode, ok := n.Get("images")
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no images: key", c.Config))
		} else if in.rules, err = rules.FromNode(c.Config, imagesNode, ropt); err != nil {
			errs = append(errs, err)
		}
	case c.Images == "":
		return nil, usageError("no rules: give --images FILE (or --config FILE)")
	default:
		if c.Auth != "" {
			af, err := credentials.LoadAuthFile(c.Auth, rc.env.lookup)
			if err != nil {
				errs = append(errs, err)
			} else {
				in.keychain.Files = append(in.keychain.Files, af)
				in.warnings = append(in.warnings, af.Warnings...)
			}
		}
		r, err := rules.LoadFile(c.Images, ropt)
		if err != nil {
			errs = append(errs, err)
		}
		in.rules = r
	}
	if len(errs) > 0 {
		return nil, &exitError{code: exitUsage, err: errors.Join(errs...)}
	}
	return in, nil
}

func openLog(rc *runContext) (io.Writer, func(), error) {
	if rc.global.Log == "" {
		return rc.stderr, func() {}, nil
	}
	f, err := os.OpenFile(rc.global.Log, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, usageError("--log: %v", err)
	}
	return f, func() { f.Close() }, nil
}

func newLogger(w io.Writer, g *Globals) *slog.Logger {
	level := slog.LevelInfo
	if g.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
