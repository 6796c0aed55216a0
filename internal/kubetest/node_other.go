//go:build !linux

package kubetest

import "testing"

// RealNodeName is the node the kubelet registers (Options.Node).
const RealNodeName = "kubetest-node"

// EnvRequireNode makes missing node binaries a failure instead of a skip.
const EnvRequireNode = "IMAGESYNC_REQUIRE_NODE"

// Node configures a real node (Linux only).
type Node struct {
	SandboxImage string
	PlainHTTP    []string
}

func (c *Cluster) startNode(t testing.TB, _ map[string]string, _ *Node) {
	t.Skip("kubetest: a real node needs Linux")
}

// ContainerLogs returns "" (no real node outside Linux).
func (c *Cluster) ContainerLogs(namespace, pod string) string { return "" }
