// Command imagesync copies container images between registries, many to
// many, through memory and the network only. It reads image-syncer's
// auth/images files unchanged.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
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
	runtime.GOMAXPROCS(cpuShare(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)))
	stop := startProfile(os.Getenv("IMAGESYNC_CPUPROFILE"), os.Getenv("IMAGESYNC_MEMPROFILE"))
	code := run(context.Background(), os.Args, env{lookup: os.LookupEnv, interrupt: interrupt}, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cpuShare is how many threads run Go code at once (GOMAXPROCS): half of
// what the runtime would use (the CPUs, or the container's CPU limit), at
// least one, unless the GOMAXPROCS variable says otherwise.
//
// A copy is bound by the network, not the CPU: its own work is a hash and
// some TLS per byte, about 2 ns, so one thread keeps up with 4 Gbit/s. With
// a thread per CPU, every wake-up of a connection woke idle threads that
// spun looking for work, taking CPU from the registries and jobs beside
// it: on the 2-core bench machine, half as many cut a W1 sync's CPU by 12%
// and W3's by 14%, and W2 (hashing 384 MiB) was no slower.
func cpuShare(env string, current int) int {
	if env != "" {
		return current // the runtime has read it
	}
	return max(1, current/2)
}

// startProfile writes a CPU profile of the run to cpuPath and the run's
// allocations (sampled every 4 KiB) to memPath, for maintainers: `go tool
// pprof`, see docs/benchmarks.md. "" profiles nothing.
func startProfile(cpuPath, memPath string) (stop func()) {
	stopCPU := func() {}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "IMAGESYNC_CPUPROFILE: %v\n", err)
		} else {
			stopCPU = func() {
				pprof.StopCPUProfile()
				f.Close()
			}
		}
	}
	if memPath == "" {
		return stopCPU
	}
	runtime.MemProfileRate = 4096
	return func() {
		stopCPU()
		f, err := os.Create(memPath)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "IMAGESYNC_MEMPROFILE: %v\n", err)
		}
	}
}
