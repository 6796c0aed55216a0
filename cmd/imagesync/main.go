// Command imagesync copies container images between registries, many to
// many, through memory and the network only. It reads image-syncer's
// auth/images files unchanged.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Set by the release build (-ldflags "-X main.version=… -X main.commit=…").
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, env{lookup: os.LookupEnv}, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
