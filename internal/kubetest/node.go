//go:build linux

package kubetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// RealNodeName is the node the kubelet registers (Options.Node).
const RealNodeName = "kubetest-node"

// EnvRequireNode makes missing node binaries (kubelet, containerd, runc) a
// failure instead of a skip; scripts/test.sh sets it where they are installed.
const EnvRequireNode = "IMAGESYNC_REQUIRE_NODE"

// Node configures a real node: Debian's containerd and runc with a kubelet
// built from the control plane's module, registered as RealNodeName. Pods
// really run; loopback addresses in them are their own unless they use the
// host's network (hostNetwork: true), as the tests' pods do to reach loopback
// registries and the API server.
type Node struct {
	// SandboxImage is the pause image (containerd's sandbox_image), in a
	// loopback registry: registry.k8s.io cannot be reached.
	SandboxImage string
	// PlainHTTP lists loopback registries ("127.0.0.1:PORT") containerd pulls
	// from over plain HTTP (a registry mirror whose endpoint is http://HOST).
	PlainHTTP []string
}

// startNode runs containerd and the kubelet and waits for the node to be Ready.
func (c *Cluster) startNode(t testing.TB, bins map[string]string, n *Node) {
	t.Helper()
	dir := c.path("node")
	for _, d := range []string{"containerd", "cni", "cni-state", "kubelet", "pod-logs", "runc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "containerd.sock")
	if len(sock) > 100 {
		t.Fatalf("kubetest: containerd socket path too long for a unix socket: %s", sock)
	}
	// Stops what containerd and the kubelet leave behind, after both stopped
	// (cleanups run last-registered first: this one runs after theirs).
	t.Cleanup(func() { c.cleanupNode(t, dir, sock, bins["IMAGESYNC_RUNC"]) })
	// The kubelet sets kernel tunables it wants (kernel.panic_on_oops=1, vm.overcommit_memory=1,
	// …) and refuses to start if it may not: they are put back as they were when it stops.
	restoreSysctls(t)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Lowering a process's oom_score_adj is not permitted on these machines; without this every
  # sandbox fails with runc's "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"), sock, n.SandboxImage,
		bins["IMAGESYNC_RUNC"], filepath.Join(dir, "runc"), bins["IMAGESYNC_CNI_BIN"], filepath.Join(dir, "cni"))
	for _, h := range n.PlainHTTP {
		fmt.Fprintf(&cfg, "  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.%q]\n    endpoint = [%q]\n", h, "http://"+h)
	}
	// A CNI network so that containerd reports the network ready; the tests' pods use the
	// host's network and never join it.
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "kubetest", "plugins": [
  {"type": "bridge", "bridge": "kubetest0", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.77.0/24"}]], "dataDir": %q}}]}`, filepath.Join(dir, "cni-state"))
	kubeletPort := freePorts(t, 1)[0]
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[1]s
imageServiceEndpoint: unix://%[1]s
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
failSwapOn: false
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
podLogsDir: %[3]q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 2s
registerNode: true
# No iptables chains on the host (KUBE-FIREWALL and the canaries).
makeIPTablesUtilChains: false
volumePluginDir: %[4]q
`, sock, kubeletPort, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"))
	for name, b := range map[string]string{"containerd.toml": cfg.String(), "cni/10-kubetest.conflist": cni, "kubelet.yaml": kcfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	c.start(t, "containerd", bins["IMAGESYNC_CONTAINERD"], "--config", filepath.Join(dir, "containerd.toml"), "--log-level", "warn")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubetest: containerd did not make %s:\n%s", sock, c.Logs("containerd"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.start(t, "kubelet", bins["IMAGESYNC_KUBELET"],
		"--config="+filepath.Join(dir, "kubelet.yaml"), "--kubeconfig="+c.Kubeconfig,
		"--hostname-override="+RealNodeName, "--node-ip=127.0.0.1",
		"--root-dir="+filepath.Join(dir, "kubelet"), "--cert-dir="+filepath.Join(dir, "kubelet", "pki"), "--v=1")
	c.waitNodeReady(t, RealNodeName, 3*time.Minute)
}

// waitNodeReady waits for the node's Ready condition.
func (c *Cluster) waitNodeReady(t testing.TB, name string, within time.Duration) {
	t.Helper()
	core, err := typedcorev1.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	last := "not registered"
	for ctx.Err() == nil {
		n, err := core.Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("kubetest: node %s is not Ready (%s)\nkubelet:\n%s\ncontainerd:\n%s", name, last, tail(c.Logs("kubelet"), 6000), tail(c.Logs("containerd"), 3000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cleanupNode removes what the node's processes leave behind once they have
// stopped: the containers runc still runs (containerd's shims outlive it),
// the shims of this containerd (found by their -address, this test's
// socket), and the mounts under the node's directory (volumes, rootfs
// overlays, the sandboxes' /dev/shm).
func (c *Cluster) cleanupNode(t testing.TB, dir, sock, runc string) {
	root := filepath.Join(dir, "runc", "k8s.io")
	if out, err := exec.Command(runc, "--root", root, "list", "-q").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command(runc, "--root", root, "delete", "--force", id).Run()
		}
	}
	for _, pid := range shimPIDs(sock) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// The device manager's socket has a fixed place; its directories go if they are empty.
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	_ = os.Remove("/var/lib/kubelet/device-plugins")
	_ = os.Remove("/var/lib/kubelet")
	// The kubelet's log links (podLogsDir does not move them) and containerd's shim sockets: the
	// directories go when this node left them empty (symlinks into the node's directory are this
	// node's).
	if links, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, l := range links {
			p := filepath.Join("/var/log/containers", l.Name())
			if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
				_ = os.Remove(p)
			}
		}
	}
	_ = os.Remove("/var/log/containers")
	_ = os.Remove("/run/containerd/s")
	_ = os.Remove("/run/containerd")
	for i := 0; i < 3; i++ {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			break
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && i == 2 {
				t.Logf("kubetest: unmount %s: %v", m, err)
			}
		}
	}
}

// kubeletSysctls are the kernel settings the kubelet changes at start
// (pkg/kubelet/cm setupKernelTunables).
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// restoreSysctls records the kubelet's kernel settings and writes them back
// when the test ends.
func restoreSysctls(t testing.TB) {
	saved := map[string][]byte{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			saved[k] = b
		}
	}
	t.Cleanup(func() {
		for k, b := range saved {
			if now, err := os.ReadFile("/proc/sys/" + k); err == nil && string(now) == string(b) {
				continue
			}
			if err := os.WriteFile("/proc/sys/"+k, b, 0o644); err != nil {
				t.Logf("kubetest: restore %s: %v", k, err)
			}
		}
	})
}

// shimPIDs are the containerd-shim processes started for this socket.
func shimPIDs(sock string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == sock {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ContainerLogs returns what a pod's containers wrote on the real node, from
// the kubelet's log files (the API server's log proxy answers 500 here: not
// looked into), or "".
func (c *Cluster) ContainerLogs(namespace, pod string) string {
	files, _ := filepath.Glob(filepath.Join(c.path("node"), "pod-logs", namespace+"_"+pod+"_*", "*", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}
