// Command imagesync copies container images between registries, many to
// many, through memory and the network only. It reads image-syncer's
// auth/images files unchanged.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/imagesync/imagesync/plugin"
)

// Set by the release build (-ldflags "-X main.version=… -X main.commit=…").
var (
	version = "dev"
	commit  = ""
)

func main() {
	// The first Ctrl-C (or SIGTERM) stops starting new images and cancels
	// the transfers in flight (upload sessions deleted, no tag written for
	// an image not finished); the ledger and the report are written, and
	// the exit code is 130. A second one exits at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	interrupt := make(chan struct{})
	go func() {
		<-sigs
		close(interrupt) // run prints the message, above the progress display
		<-sigs
		// On a fresh line: the cursor may be at the end of a bar.
		fmt.Fprintf(os.Stderr, "\n%s: interrupted again: quitting\n", plugin.Detect(os.Args[0]).Name)
		os.Exit(exitInterrupted)
	}()
	stop := startProfile(os.Getenv("IMAGESYNC_CPUPROFILE"))
	code := run(context.Background(), os.Args, env{lookup: os.LookupEnv, interrupt: interrupt}, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the run to path (for maintainers:
// `go tool pprof`, see docs/benchmarks.md); "" profiles nothing.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "IMAGESYNC_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
