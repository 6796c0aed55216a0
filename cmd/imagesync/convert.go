package main

import (
	"github.com/imagesync/imagesync/sync/config"
	"github.com/imagesync/imagesync/sync/rules"
)

// ConvertCmd is `imagesync convert`: image-syncer files → the native config file.
type ConvertCmd struct {
	Images string `type:"path" placeholder:"FILE" help:"image-syncer rule file (.json, .yaml, .yml)."`
	Auth   string `placeholder:"FILE" help:"image-syncer auth file: referenced from the output as given (auth-file:, relative to the config file), its secrets are not copied."`
	Config string `type:"path" placeholder:"FILE" help:"image-syncer's legacy file with auth: and images: (instead of --images and --auth)."`
}

// Run implements `imagesync convert`: sync/config converts, this prints.
func (c *ConvertCmd) Run(rc *runContext) error {
	reg, _ := rc.env.lookup("DEFAULT_REGISTRY")
	ns, _ := rc.env.lookup("DEFAULT_NAMESPACE")
	f, err := config.Convert(c.Images, c.Auth, c.Config, rules.Options{DefaultRegistry: reg, DefaultNamespace: ns, LookupEnv: rc.env.lookup})
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	b, err := f.Encode()
	if err != nil {
		return err
	}
	_, err = rc.stdout.Write(b)
	return err
}
