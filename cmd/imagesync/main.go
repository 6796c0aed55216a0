// Command imagesync copies container images between registries, many to
// many, through memory and the network only. It reads image-syncer's
// auth/images files unchanged.
package main

import (
	"context"
	"fmt"
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
	// The first Ctrl-C (or SIGTERM) stops starting new images: those in
	// flight finish, the ledger and the report are written, and the exit
	// code is 130. A second one exits at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	interrupt := make(chan struct{})
	go func() {
		<-sigs
		close(interrupt)
		fmt.Fprintln(os.Stderr, "imagesync: interrupted: finishing the images in flight (press Ctrl-C again to quit at once)")
		<-sigs
		fmt.Fprintln(os.Stderr, "imagesync: interrupted again: quitting")
		os.Exit(exitInterrupted)
	}()
	os.Exit(run(context.Background(), os.Args, env{lookup: os.LookupEnv, interrupt: interrupt}, os.Stdout, os.Stderr))
}
