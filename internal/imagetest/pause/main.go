// Command pause is the sandbox process of a test node's pods
// (internal/kubetest): it blocks until SIGTERM or SIGINT, as
// registry.k8s.io/pause does, and is small and static enough for a one-layer
// image (internal/imagetest.Pause).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
}
