package kube

import (
	"context"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// scheme knows only the four API groups imagesync uses. client-go's typed
// clientset would link every API group of Kubernetes (and its OpenAPI and
// apply configurations) into all three personalities: about 30 MB of binary.
// It is built on first use, not in an init: every run of the binary (a
// sync's no-op included) would pay its ~0.5 ms.
var scheme = sync.OnceValue(func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
})

// api is a REST client per API group, JSON on the wire.
type api struct {
	core, apps, batch, rbac *rest.RESTClient
}

func newAPI(cfg *rest.Config) (*api, error) {
	a := &api{}
	for _, g := range []struct {
		c  **rest.RESTClient
		gv schema.GroupVersion
	}{{&a.core, corev1.SchemeGroupVersion}, {&a.apps, appsv1.SchemeGroupVersion}, {&a.batch, batchv1.SchemeGroupVersion}, {&a.rbac, rbacv1.SchemeGroupVersion}} {
		c := rest.CopyConfig(cfg)
		gv := g.gv
		c.GroupVersion = &gv
		c.APIPath = "/apis"
		if gv.Group == "" {
			c.APIPath = "/api"
		}
		c.ContentType = runtime.ContentTypeJSON
		c.AcceptContentTypes = runtime.ContentTypeJSON
		c.NegotiatedSerializer = serializer.NewCodecFactory(scheme()).WithoutConversion()
		rc, err := rest.RESTClientFor(c)
		if err != nil {
			return nil, err
		}
		*g.c = rc
	}
	return a, nil
}

// resource is one kind of object in one namespace ("" for all, when listing).
type resource struct {
	c         *rest.RESTClient
	namespace string
	name      string // plural: "configmaps"
}

func (r resource) create(ctx context.Context, obj runtime.Object) error {
	return r.c.Post().Namespace(r.namespace).Resource(r.name).Param("fieldManager", appName).Body(obj).Do(ctx).Error()
}

func (r resource) get(ctx context.Context, name string, into runtime.Object) error {
	return r.c.Get().Namespace(r.namespace).Resource(r.name).Name(name).Do(ctx).Into(into)
}

func (r resource) update(ctx context.Context, name string, obj runtime.Object) error {
	return r.c.Put().Namespace(r.namespace).Resource(r.name).Name(name).Param("fieldManager", appName).Body(obj).Do(ctx).Error()
}

func (r resource) list(ctx context.Context, labelSelector string, into runtime.Object) error {
	req := r.c.Get().Namespace(r.namespace).Resource(r.name)
	if labelSelector != "" {
		req = req.Param("labelSelector", labelSelector)
	}
	return req.Do(ctx).Into(into)
}

// upsert creates obj, or replaces the object of that name.
func (r resource) upsert(ctx context.Context, obj metav1.Object, current runtime.Object) (string, error) {
	err := r.create(ctx, obj.(runtime.Object))
	if err == nil {
		return "created", nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if err := r.get(ctx, obj.GetName(), current); err != nil {
		return "", err
	}
	cur, _ := current.(metav1.Object)
	obj.SetResourceVersion(cur.GetResourceVersion())
	if err := r.update(ctx, obj.GetName(), obj.(runtime.Object)); err != nil {
		return "", err
	}
	return "configured", nil
}
