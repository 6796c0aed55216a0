// Package kubetest runs a real Kubernetes control plane on loopback for
// tests: etcd, kube-apiserver and, on request, kube-controller-manager (job
// and cronjob controllers), kube-scheduler and kwok (one fake node whose pods
// are marked Running, and Succeeded when a Job owns them: no container ever
// runs). Certificates, the service-account key and an admin token are made
// per cluster; Kubeconfig is a file for clients.
//
// The binaries come from scripts/kube-deps.sh (built once per machine) through
// IMAGESYNC_ETCD, IMAGESYNC_KUBE_APISERVER, IMAGESYNC_KUBE_CONTROLLER_MANAGER,
// IMAGESYNC_KUBE_SCHEDULER and IMAGESYNC_KWOK. Tests skip under -short, and
// skip when the binaries are missing unless IMAGESYNC_REQUIRE_KUBE=1.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// NodeName is the fake node kwok manages.
const NodeName = "kwok-node"

// Options choose what runs besides etcd and the API server.
type Options struct {
	// Workloads starts kube-controller-manager, kube-scheduler and kwok with
	// one fake node: Jobs get pods, pods get scheduled and completed.
	Workloads bool
	// Node (with Workloads) replaces kwok's fake node with a real one:
	// containerd, runc and a kubelet (see Node). Linux and root only.
	Node *Node
}

// Cluster is a running control plane.
type Cluster struct {
	Kubeconfig string // admin kubeconfig file
	Server     string // https://127.0.0.1:PORT
	Token      string // admin bearer token (group system:masters)
	CA         []byte // PEM of the CA that signed the API server's certificate
	dir        string
}

// Start runs a control plane for the test and stops it when the test ends.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("kubetest: a control plane is not started under -short")
	}
	bins := map[string]string{}
	need := []string{"IMAGESYNC_ETCD", "IMAGESYNC_KUBE_APISERVER"}
	if opt.Workloads {
		need = append(need, "IMAGESYNC_KUBE_CONTROLLER_MANAGER", "IMAGESYNC_KUBE_SCHEDULER")
		if opt.Node == nil {
			need = append(need, "IMAGESYNC_KWOK")
		}
	}
	for _, k := range need {
		p := os.Getenv(k)
		if p == "" {
			missing(t, k+" is not set (scripts/kube-deps.sh builds the control plane)")
			return nil
		}
		if _, err := os.Stat(p); err != nil {
			missing(t, fmt.Sprintf("%s=%s: %v", k, p, err))
			return nil
		}
		bins[k] = p
	}
	if opt.Node != nil {
		if !opt.Workloads {
			t.Fatal("kubetest: Options.Node needs Options.Workloads (the controllers and the scheduler)")
		}
		if !nodeBinaries(t, bins) {
			return nil
		}
	}

	c := &Cluster{dir: t.TempDir()}
	caPEM, certPEM, keyPEM, err := servingCerts()
	if err != nil {
		t.Fatal(err)
	}
	c.CA = caPEM
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	saDER, _ := x509.MarshalECPrivateKey(saKey)
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c.Token = hex.EncodeToString(tok)
	files := map[string][]byte{
		"ca.crt":        caPEM,
		"apiserver.crt": certPEM,
		"apiserver.key": keyPEM,
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		"tokens.csv":    []byte(c.Token + ",admin,admin-uid,\"system:masters\"\n"),
		"kwok.yaml":     kwokStages,
	}
	for name, b := range files {
		if err := os.WriteFile(c.path(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ports := freePorts(t, 3)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	c.start(t, "etcd", bins["IMAGESYNC_ETCD"],
		"--name=default", "--data-dir="+c.path("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--log-level=warn")
	c.start(t, "kube-apiserver", bins["IMAGESYNC_KUBE_APISERVER"],
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+c.path("apiserver.crt"), "--tls-private-key-file="+c.path("apiserver.key"),
		"--token-auth-file="+c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.path("sa.key"), "--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// The admission plugin would taint a new node not-ready; no node lifecycle controller runs to lift it.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--enable-priority-and-fairness=false",
		"--cert-dir="+c.path("certs"))
	c.writeKubeconfig(t)
	c.waitReady(t)
	if opt.Workloads {
		c.start(t, "kube-controller-manager", bins["IMAGESYNC_KUBE_CONTROLLER_MANAGER"],
			"--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
			// root-ca-cert-publisher: the kube-root-ca.crt ConfigMap real pods mount with their token.
			"--controllers=job,cronjob,serviceaccount,garbagecollector,root-ca-cert-publisher",
			"--service-account-private-key-file="+c.path("sa.key"), "--root-ca-file="+c.path("ca.crt"),
			"--bind-address=127.0.0.1", "--secure-port=0")
		c.start(t, "kube-scheduler", bins["IMAGESYNC_KUBE_SCHEDULER"],
			"--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
			"--bind-address=127.0.0.1", "--secure-port=0")
		if opt.Node != nil {
			c.startNode(t, bins, opt.Node)
			return c
		}
		c.start(t, "kwok", bins["IMAGESYNC_KWOK"],
			"--kubeconfig="+c.Kubeconfig, "--config="+c.path("kwok.yaml"),
			"--manage-single-node="+NodeName, "--node-lease-duration-seconds=0",
			"--node-ip=127.0.0.1", "--cidr=10.1.0.0/16")
		c.addNode(t)
	}
	return c
}

// nodeBinaries finds the kubelet (scripts/kube-deps.sh), containerd, runc
// and the CNI plugins (scripts/node-deps.sh), or skips the test (fails with
// IMAGESYNC_REQUIRE_NODE=1).
func nodeBinaries(t testing.TB, bins map[string]string) bool {
	t.Helper()
	why := ""
	for _, k := range []string{"IMAGESYNC_KUBELET", "IMAGESYNC_CONTAINERD", "IMAGESYNC_RUNC", "IMAGESYNC_CNI_BIN"} {
		p := os.Getenv(k)
		if p == "" {
			why = k + " is not set (scripts/kube-deps.sh builds the kubelet, scripts/node-deps.sh installs the rest)"
			break
		}
		if _, err := os.Stat(p); err != nil {
			why = fmt.Sprintf("%s=%s: %v", k, p, err)
			break
		}
		bins[k] = p
	}
	if why == "" && (runtime.GOOS != "linux" || os.Geteuid() != 0) {
		why = "a real node needs Linux and root"
	}
	if why == "" {
		return true
	}
	if os.Getenv(EnvRequireNode) == "1" {
		t.Fatalf("kubetest: %s (%s=1)", why, EnvRequireNode)
	}
	t.Skipf("kubetest: %s", why)
	return false
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("IMAGESYNC_REQUIRE_KUBE") == "1" {
		t.Fatalf("kubetest: %s (IMAGESYNC_REQUIRE_KUBE=1)", why)
	}
	t.Skipf("kubetest: %s", why)
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

// RESTConfig is an admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA},
		QPS:             100,
		Burst:           200,
	}
}

// start runs one process, its output to a log file printed when the test
// fails; it is stopped (SIGTERM, then SIGKILL) when the test ends.
func (c *Cluster) start(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	logPath := c.path(name + ".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "HOME="+c.dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("kubetest: start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("kubetest: last lines of %s:\n%s", name, b)
		}
	})
}

func (c *Cluster) writeKubeconfig(t testing.TB) {
	t.Helper()
	c.Kubeconfig = c.path("kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: admin
    namespace: default
current-context: kubetest
`, c.Server, base64.StdEncoding.EncodeToString(c.CA), c.Token)
	if err := os.WriteFile(c.Kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls /readyz until the API server answers 200.
func (c *Cluster) waitReady(t testing.TB) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kubetest: the API server at %s is not ready: %s", c.Server, last)
}

// addNode registers the fake node kwok manages, without taints.
func (c *Cluster) addNode(t testing.TB) {
	t.Helper()
	core, err := typedcorev1.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName, Labels: map[string]string{"kubernetes.io/hostname": NodeName, "type": "kwok"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110"),
		}, Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110"),
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := core.Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create node: %v", err)
	}
	// Wait for kwok to mark it Ready.
	for ctx.Err() == nil {
		n, err := core.Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kubetest: kwok did not make node %s Ready", NodeName)
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// servingCerts makes a CA and a certificate for 127.0.0.1 and localhost.
func servingCerts() (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Logs returns the log of one of the processes (for test failure messages).
func (c *Cluster) Logs(name string) string {
	b, _ := os.ReadFile(c.path(name + ".log"))
	return string(bytes.TrimSpace(b))
}
