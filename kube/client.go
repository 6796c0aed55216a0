// Package kube holds what imagesync does with a Kubernetes cluster: the
// objects of a sharded run (`kubectl imagesync job`), the shards' result
// ConfigMaps and their aggregation (`status`), and the images a cluster
// runs (`--from-cluster`). Clients are client-go's typed clients of the few
// API groups used, configured the way kubectl is (kubeconfig loading rules,
// in-cluster service account inside a pod).
package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Access is kubectl's connection flags: empty fields take kubectl's defaults
// ($KUBECONFIG, ~/.kube/config, the current context, or the pod's service
// account when running in a cluster).
type Access struct {
	Kubeconfig string
	Context    string
	Cluster    string
	User       string
	Namespace  string
	Server     string
}

// Config resolves the client configuration and the namespace (the flag, else
// the context's, else the pod's, else "default").
func (a Access) Config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = a.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{
		CurrentContext: a.Context,
		Context:        clientcmdapi.Context{Cluster: a.Cluster, AuthInfo: a.User, Namespace: a.Namespace},
		ClusterInfo:    clientcmdapi.Cluster{Server: a.Server},
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		// client-go would say "try setting KUBERNETES_MASTER", a variable it no longer reads
		return nil, "", errors.New("no Kubernetes cluster configured: give --kubeconfig FILE (or --server URL), set KUBECONFIG, or write ~/.kube/config (in a pod, its service account is used)")
	}
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client configuration: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes namespace: %w", err)
	}
	cfg.UserAgent = "imagesync"
	return cfg, ns, nil
}
