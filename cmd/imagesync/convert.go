package main

import (
	"bytes"
	"fmt"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/rules"
)

// ConvertCmd is `imagesync convert`: image-syncer files → the native config file.
type ConvertCmd struct {
	Images string `type:"path" placeholder:"FILE" help:"image-syncer rule file (.json, .yaml, .yml)."`
	Auth   string `type:"path" placeholder:"FILE" help:"image-syncer auth file: referenced from the output (auth-file:), its secrets are not copied."`
	Config string `type:"path" placeholder:"FILE" help:"image-syncer's legacy file with auth: and images: (instead of --images and --auth)."`
}

// nativeEntry is one sync entry of the output.
type nativeEntry struct {
	From string `yaml:"from"`
	To   any    `yaml:"to"`
}

type nativeOut struct {
	AuthFile string        `yaml:"auth-file,omitempty"`
	Sync     []nativeEntry `yaml:"sync"`
}

// Run implements `imagesync convert`. The output keeps every source and
// destination as written ($VAR included), so it means what the image-syncer
// files mean; the auth file is referenced by its absolute path, never copied.
func (c *ConvertCmd) Run(rc *runContext) error {
	images, auth := c.Images, c.Auth
	var imagesNode *cfgfile.Node
	switch {
	case c.Config != "":
		if images != "" || auth != "" {
			return usageError("--config holds auth: and images:: give it alone, or --images and --auth")
		}
		n, err := cfgfile.Load(c.Config)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		var ok bool
		if imagesNode, ok = n.Get("images"); !ok {
			return usageError("%s: no images: key", c.Config)
		}
		if _, ok := n.Get("auth"); ok {
			auth = c.Config
		}
		images = c.Config
	case images == "":
		return usageError("convert needs --images FILE (and --auth FILE), or --config FILE")
	default:
		n, err := cfgfile.Load(images)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		imagesNode = n
	}
	// Check the files the way sync would read them: nothing broken is converted.
	reg, _ := rc.env.lookup("DEFAULT_REGISTRY")
	ns, _ := rc.env.lookup("DEFAULT_NAMESPACE")
	if _, err := rules.FromNode(images, imagesNode, rules.Options{DefaultRegistry: reg, DefaultNamespace: ns, LookupEnv: rc.env.lookup}); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	out := nativeOut{Sync: []nativeEntry{}}
	if auth != "" {
		if _, err := config.LoadAuthOrLegacy(auth, rc.env.lookup); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		abs, err := filepath.Abs(auth)
		if err != nil {
			return usageError("--auth: %v", err)
		}
		out.AuthFile = abs
	}
	if imagesNode != nil && imagesNode.Kind == cfgfile.Map {
		for _, kv := range imagesNode.Map {
			e := nativeEntry{From: kv.Key}
			if v := kv.Value; v.Kind == cfgfile.List {
				var to []string
				for _, it := range v.List {
					to = append(to, it.Str)
				}
				e.To = to
			} else {
				e.To = v.Str
			}
			out.Sync = append(out.Sync, e)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return err
	}
	b := buf.Bytes()
	fmt.Fprintf(rc.stdout, "# yaml-language-server: $schema=https://raw.githubusercontent.com/imagesync/imagesync/main/imagesync.schema.json\n# Converted by `imagesync convert` from %s.\n", describeInputs(images, auth))
	_, err := rc.stdout.Write(b)
	return err
}

func describeInputs(images, auth string) string {
	if auth == "" || auth == images {
		return filepath.Base(images)
	}
	return filepath.Base(images) + " and " + filepath.Base(auth)
}
