package controllers

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secrets and ConfigMaps are never in the manager's cache: a controller that cached them
// would hold every Secret of the cluster in memory (and in a compromised pod's reach). The
// watches that wake the objects referring to one see only its metadata, trimmed to its
// identity; the reconcilers read the referenced ones from the API server (refClient).

// ParseWatchNamespaces reads the --watch-namespaces flag: a comma-separated list of
// namespaces, empty for all.
func ParseWatchNamespaces(s string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}

// cachedNamespaces are the namespaces the cache holds: the watched ones and the controller's
// own (known-hosts store, leader election), or nil for all when none is named.
func cachedNamespaces(watch []string, own string) []string {
	if len(watch) == 0 {
		return nil
	}
	out := slices.Clone(watch)
	if !slices.Contains(out, own) {
		out = append(out, own)
	}
	slices.Sort(out)
	return out
}

// ManagerOptions completes o with the cache and client settings the controllers rely on: the
// cache holds the watched namespaces only (opts.WatchNamespaces and the controller's own; all
// when none is named), keeps of Secrets and ConfigMaps only their identity, and the client
// never reads Secrets or ConfigMaps through the cache (a Get there would start an informer of
// every Secret, data and all).
func ManagerOptions(o ctrl.Options, opts Options) ctrl.Options {
	if namespaces := cachedNamespaces(opts.WatchNamespaces, opts.namespace()); namespaces != nil {
		o.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	// Managed fields are read by no reconciler, yet every List from the cache copies them: in
	// a heap profile at 1,000 hosts they were 7 MB of the 16 MB that copies of Servers held.
	if o.Cache.DefaultTransform == nil {
		o.Cache.DefaultTransform = cache.TransformStripManagedFields()
	}
	if o.Cache.ByObject == nil {
		o.Cache.ByObject = map[client.Object]cache.ByObject{}
	}
	for _, obj := range []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}} {
		o.Cache.ByObject[obj] = cache.ByObject{Transform: identityOnly}
	}
	if o.Client.Cache == nil {
		o.Client.Cache = &client.CacheOptions{}
	}
	o.Client.Cache.DisableFor = append(o.Client.Cache.DisableFor, &corev1.Secret{}, &corev1.ConfigMap{})
	return o
}

// identityOnly trims the metadata of a Secret or ConfigMap to what the watches and refClient
// use: namespace, name, resourceVersion, deletion time and the key Secret hold. Labels, annotations (kubectl's
// last-applied-configuration annotation holds a whole Secret), UID and managed fields are
// dropped, and the namespace and type strings shared, so a cluster's unrelated Secrets cost
// the cache about 400 bytes each (measured: test/envtest/process).
var keySecretFinalizers = []string{KeySecretFinalizer}

func identityOnly(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Namespace: namespaceNames.intern(m.Namespace), Name: m.Name, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
	}}
	// The controller's own hold on a key Secret stays visible: KeySecretReconciler lets go of
	// one that no Server names any more.
	if slices.Contains(m.Finalizers, KeySecretFinalizer) {
		out.Finalizers = keySecretFinalizers
	}
	switch m.Kind {
	case secretType.Kind:
		out.TypeMeta = secretType
	case configMapType.Kind:
		out.TypeMeta = configMapType
	}
	return out, nil
}

var (
	secretType    = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	configMapType = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	// namespaceNames interns namespace names: each decoded object brings its own copy.
	namespaceNames = &internTable{strings: map[string]string{}}
)

type internTable struct {
	mu      sync.Mutex
	strings map[string]string
}

func (t *internTable) intern(s string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.strings[s]; ok {
		return v
	}
	t.strings[s] = s
	return s
}

// refClient is the reconcilers' client. Secrets and ConfigMaps are read from the API server,
// and the ones read are kept in a small cache keyed by resourceVersion: the watched metadata
// says whether a kept copy is current, so a referenced Secret that did not change costs no
// request however often its referrers reconcile, and a changed one is read again at once.
type refClient struct {
	client.Client
	meta    client.Reader // the manager's cache: the trimmed metadata of Secrets and ConfigMaps
	api     client.Reader // the API server
	content *contentCache
}

func newRefClient(c client.Client, meta, api client.Reader) *refClient {
	return &refClient{Client: c, meta: meta, api: api, content: newContentCache(contentCacheBytes, contentCacheEntries)}
}

// Get reads Secrets and ConfigMaps as the type comment says, everything else from the cache.
// A Secret missing from the watched metadata is not found, as it would be in a cache: its
// creation wakes the objects referring to it.
func (c *refClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	var gvk schema.GroupVersionKind
	switch obj.(type) {
	case *corev1.Secret:
		gvk = corev1.SchemeGroupVersion.WithKind("Secret")
	case *corev1.ConfigMap:
		gvk = corev1.SchemeGroupVersion.WithKind("ConfigMap")
	default:
		return c.Client.Get(ctx, key, obj, opts...)
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	if err := c.meta.Get(ctx, key, m); err != nil {
		if apierrors.IsNotFound(err) {
			return err
		}
		// Not in the cache's namespaces: nothing tells whether a kept copy is current.
		return c.api.Get(ctx, key, obj, opts...)
	}
	ckey := gvk.Kind + "/" + key.String()
	if c.content.get(ckey, m.ResourceVersion, obj) {
		return nil
	}
	if err := c.api.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	c.content.put(ckey, obj)
	return nil
}

// The content cache's bounds: the referenced Secrets and ConfigMaps of a cluster, not all
// of them (an object is at most about 1 MiB).
const (
	contentCacheBytes   = 16 << 20
	contentCacheEntries = 4096
)

// contentCache keeps the Secrets and ConfigMaps read last, each under its kind, namespace and
// name with its resourceVersion, within a byte and a count budget (least recently used go
// first). It is safe for concurrent use.
type contentCache struct {
	mu                   sync.Mutex
	maxBytes, maxEntries int
	bytes                int
	order                *list.List // of *contentEntry, most recently used first
	entries              map[string]*list.Element
}

type contentEntry struct {
	key  string
	obj  client.Object // a *corev1.Secret or *corev1.ConfigMap of its own
	size int
}

func newContentCache(maxBytes, maxEntries int) *contentCache {
	return &contentCache{maxBytes: maxBytes, maxEntries: maxEntries, order: list.New(), entries: map[string]*list.Element{}}
}

// get copies the kept object of key into obj when it has resourceVersion rv.
func (c *contentCache) get(key, rv string, obj client.Object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return false
	}
	e := el.Value.(*contentEntry)
	if e.obj.GetResourceVersion() != rv {
		return false
	}
	switch src := e.obj.(type) {
	case *corev1.Secret:
		dst, ok := obj.(*corev1.Secret)
		if !ok {
			return false
		}
		src.DeepCopyInto(dst)
	case *corev1.ConfigMap:
		dst, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return false
		}
		src.DeepCopyInto(dst)
	}
	c.order.MoveToFront(el)
	return true
}

// put keeps a copy of obj under key, replacing what key held.
func (c *contentCache) put(key string, obj client.Object) {
	var kept client.Object
	var size int
	switch o := obj.(type) {
	case *corev1.Secret:
		kept, size = o.DeepCopy(), o.Size()
	case *corev1.ConfigMap:
		kept, size = o.DeepCopy(), o.Size()
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.remove(el)
	}
	if size > c.maxBytes/8 {
		return // one object does not crowd out the others
	}
	c.entries[key] = c.order.PushFront(&contentEntry{key: key, obj: kept, size: size})
	c.bytes += size
	for c.bytes > c.maxBytes || c.order.Len() > c.maxEntries {
		c.remove(c.order.Back())
	}
}

func (c *contentCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*contentEntry)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// len is the number of kept objects.
func (c *contentCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
