// Package apiread reads, from a live cluster, the API objects the analyzer
// needs to explain one Service: the same objects a snapshot's objects.yaml
// holds (docs/snapshot.md), so that live mode and --snapshot analyse the
// same thing and a live run can be saved with snapshot.Save. It also
// chooses the nodes to probe and builds the agent's request for each.
//
// Read is the only function that talks to the API server; the others are
// pure. Errors carry messages a person can act on (a close name, the
// permission that is missing, the server that cannot be reached) and
// match the sentinels of errors.go with errors.Is.
package apiread

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Defaults of Options.
const (
	// DefaultPageSize is the limit of each page of a list.
	DefaultPageSize = 500
	// DefaultMaxPodGets caps the endpoint pods fetched one by one; when
	// more are missing after the selector list, their namespace is listed
	// once instead.
	DefaultMaxPodGets = 50
)

// Where kube-proxy and the cluster DNS live.
const (
	KubeSystem    = "kube-system"
	KubeProxyName = "kube-proxy" // ConfigMap and DaemonSet
	KubeDNSName   = "kube-dns"   // Service (CoreDNS keeps the name)
	labelK8sApp   = "k8s-app"
)

// Options tune Read.
type Options struct {
	// From is the raw --from value (pod/NAME, pod/NS/NAME, NS/NAME,
	// node/NAME or an IP, see analyze.ParseSource); pod/NAME is in the
	// Service's namespace. The pod is fetched; a pod or node that does not
	// exist is an error (ErrSourceNotFound). For an IP, the pod that has
	// it, if any, is fetched too (best effort).
	From string
	// Server is the API server's URL, named by UnreachableError and
	// UnauthorizedError when the transport error does not say it.
	Server string
	// PageSize is the limit of each list page (0: DefaultPageSize).
	PageSize int64
	// MaxPodGets caps the endpoint pods fetched one by one (0:
	// DefaultMaxPodGets).
	MaxPodGets int
	// SkipDNS skips reading the cluster DNS Service (kube-system/kube-dns
	// or k8s-app=kube-dns), its EndpointSlices and pods; without them the
	// analyzer does not check the DNS path.
	SkipDNS bool
}

// Result is what Read gathered.
type Result struct {
	// Objects are ready for snapshot.Save and analyze: every object has
	// its apiVersion and kind set; managedFields and the nodes' image
	// lists are dropped. Each kind is sorted by namespace and name.
	Objects snapshot.Objects
	// Service is the Service asked about (also in Objects.Services).
	Service *corev1.Service
	// KubeProxy is the DaemonSet kube-system/kube-proxy, nil when absent
	// or unreadable. It is not part of a snapshot.
	KubeProxy *appsv1.DaemonSet
	// Warnings say what could not be read and what the analysis loses by
	// it; none of them is fatal.
	Warnings []string
}

// Read gets the Service namespace/name and what the analyzer needs to
// explain it: its EndpointSlices, the pods behind them (and the --from
// pod), every node, kube-proxy's ConfigMap and DaemonSet, and the cluster
// DNS Service with its slices and pods.
//
// The Service, its EndpointSlices, the pods and the nodes are needed: an
// error reading them is returned (NotFoundError, ForbiddenError,
// UnauthorizedError, UnreachableError, ...). kube-proxy's and the DNS
// objects are best effort: when they are absent or forbidden, Read says so
// in Result.Warnings. Headless and ExternalName services are read like any
// other (see NeedsProbe). An empty namespace is "default".
func Read(ctx context.Context, c kubernetes.Interface, namespace, name string, opts Options) (*Result, error) {
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.MaxPodGets <= 0 {
		opts.MaxPodGets = DefaultMaxPodGets
	}
	r := &reader{c: c, opts: opts}
	var src *analyze.Source
	if opts.From != "" {
		s, err := analyze.ParseSource(opts.From, namespace)
		if err != nil {
			return nil, err
		}
		src = &s
	}

	svc, err := c.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, r.serviceNotFound(ctx, namespace, name)
	}
	if err != nil {
		return nil, r.apiError(err, "get", "services", namespace)
	}
	slices, err := r.slicesOf(ctx, svc)
	if err != nil {
		return nil, err
	}

	// The rest is independent: read it concurrently. Each part keeps its
	// own results and warnings, merged below in a fixed order.
	var (
		nodes     []*corev1.Node
		pods      podSet
		fromPods  podSet
		proxy     proxyPart
		dns       dnsPart
		podWarns  []string
		fromWarns []string
	)
	err = runAll(ctx,
		func(ctx context.Context) (err error) {
			nodes, err = r.nodes(ctx)
			return err
		},
		func(ctx context.Context) (err error) {
			pods, podWarns, err = r.endpointPods(ctx, svc, slices)
			return err
		},
		func(ctx context.Context) (err error) {
			fromPods, fromWarns, err = r.sourcePods(ctx, src)
			return err
		},
		func(ctx context.Context) error {
			proxy = r.kubeProxy(ctx)
			return nil
		},
		func(ctx context.Context) error {
			if !opts.SkipDNS {
				dns = r.clusterDNS(ctx, svc)
			}
			return nil
		},
	)
	if err != nil {
		return nil, err
	}
	if src != nil && src.Kind == analyze.SourceNode {
		if err := checkNodeSource(nodes, src.Name); err != nil {
			return nil, err
		}
	}

	res := &Result{Service: svc, KubeProxy: proxy.ds}
	res.Warnings = append(res.Warnings, podWarns...)
	res.Warnings = append(res.Warnings, fromWarns...)
	res.Warnings = append(res.Warnings, proxy.warnings...)
	res.Warnings = append(res.Warnings, dns.warnings...)

	o := &res.Objects
	o.Services = []*corev1.Service{svc}
	if dns.svc != nil {
		o.Services = append(o.Services, dns.svc)
	}
	o.EndpointSlices = append(slices, dns.slices...)
	all := podSet{}
	all.add(pods.list()...)
	all.add(fromPods.list()...)
	all.add(dns.pods.list()...)
	o.Pods = all.list()
	o.Nodes = nodes
	if proxy.cm != nil {
		o.ConfigMaps = []*corev1.ConfigMap{proxy.cm}
	}
	tidy(o)
	if res.KubeProxy != nil {
		clean(res.KubeProxy, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	}
	return res, nil
}

type reader struct {
	c    kubernetes.Interface
	opts Options
}

// runAll runs the functions concurrently and returns the first error in
// argument order, preferring a real error over the cancellations the
// first one causes.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = fn(ctx); errs[i] != nil && !isCanceled(errs[i]) {
				cancel()
			}
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case !isCanceled(err):
			return err
		case first == nil:
			first = err
		}
	}
	return first
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// listAll follows a list's continue tokens and returns every item. page
// returns a list's items and its continue token. When a token expires (410
// Gone) it lists again without a limit, as client-go's pager does.
func listAll[L any, T any](ctx context.Context, pageSize int64, opts metav1.ListOptions,
	list func(context.Context, metav1.ListOptions) (L, error), page func(L) ([]T, string)) ([]T, error) {
	var out []T
	opts.Limit = pageSize
	for {
		l, err := list(ctx, opts)
		if err != nil {
			if apierrors.IsResourceExpired(err) && opts.Continue != "" {
				full := metav1.ListOptions{LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector}
				return listAll(ctx, 0, full, list, page)
			}
			return nil, err
		}
		items, next := page(l)
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		opts.Continue = next
	}
}

// Pages of the lists Read makes.
func slicePage(l *discoveryv1.EndpointSliceList) ([]*discoveryv1.EndpointSlice, string) {
	out := make([]*discoveryv1.EndpointSlice, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, l.Continue
}

func nodePage(l *corev1.NodeList) ([]*corev1.Node, string) {
	out := make([]*corev1.Node, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, l.Continue
}

func podPage(l *corev1.PodList) ([]*corev1.Pod, string) {
	out := make([]*corev1.Pod, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, l.Continue
}

// slicesOf lists the EndpointSlices of svc.
func (r *reader) slicesOf(ctx context.Context, svc *corev1.Service) ([]*discoveryv1.EndpointSlice, error) {
	sel := labels.Set{discoveryv1.LabelServiceName: svc.Name}.String()
	out, err := listAll(ctx, r.opts.PageSize, metav1.ListOptions{LabelSelector: sel},
		r.c.DiscoveryV1().EndpointSlices(svc.Namespace).List, slicePage)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: the cluster does not serve discovery.k8s.io/v1 EndpointSlices (Kubernetes 1.21 or later is needed): %v", ErrAPINotServed, err)
	}
	if err != nil {
		return nil, r.apiError(err, "list", "endpointslices.discovery.k8s.io", svc.Namespace)
	}
	return out, nil
}

// nodes lists every node.
func (r *reader) nodes(ctx context.Context) ([]*corev1.Node, error) {
	out, err := listAll(ctx, r.opts.PageSize, metav1.ListOptions{}, r.c.CoreV1().Nodes().List, nodePage)
	if err != nil {
		return nil, r.apiError(err, "list", "nodes", "")
	}
	return out, nil
}

// podSet holds pods by namespace/name.
type podSet map[string]*corev1.Pod

func (s podSet) add(pods ...*corev1.Pod) {
	for _, p := range pods {
		s[p.Namespace+"/"+p.Name] = p
	}
}

func (s podSet) has(key string) bool { _, ok := s[key]; return ok }

// list returns the pods sorted by namespace/name.
func (s podSet) list() []*corev1.Pod {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*corev1.Pod, 0, len(keys))
	for _, k := range keys {
		out = append(out, s[k])
	}
	return out
}

// endpointPods gets the pods behind svc's endpoints: one list of the
// pods its selector picks, then the targetRefs still missing one by one,
// or, when more than MaxPodGets are missing, one list of their namespace.
// A targetRef whose pod is gone is a warning.
func (r *reader) endpointPods(ctx context.Context, svc *corev1.Service, slices []*discoveryv1.EndpointSlice) (podSet, []string, error) {
	got := podSet{}
	var warnings []string
	if len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName {
		pods, err := r.listPods(ctx, svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector).String())
		if err != nil {
			return nil, nil, err
		}
		got.add(pods...)
	}
	var missing []string // namespace/name
	seen := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			ref := ep.TargetRef
			if ref == nil || ref.Kind != "Pod" || ref.Name == "" {
				continue
			}
			ns := ref.Namespace
			if ns == "" {
				ns = sl.Namespace
			}
			key := ns + "/" + ref.Name
			if !got.has(key) && !seen[key] {
				seen[key] = true
				missing = append(missing, key)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > r.opts.MaxPodGets {
		byNS := map[string]bool{}
		for _, key := range missing {
			ns, _, _ := strings.Cut(key, "/")
			byNS[ns] = true
		}
		for _, ns := range sortedKeys(byNS) {
			pods, err := r.listPods(ctx, ns, "")
			if err != nil {
				return nil, nil, err
			}
			want := map[string]bool{}
			for _, key := range missing {
				want[key] = true
			}
			for _, p := range pods {
				if want[p.Namespace+"/"+p.Name] {
					got.add(p)
				}
			}
		}
		var gone []string
		for _, key := range missing {
			if !got.has(key) {
				gone = append(gone, key)
			}
		}
		if len(gone) > 0 {
			warnings = append(warnings, fmt.Sprintf("%d endpoint pod(s) of the EndpointSlices no longer exist (%s): the slices may be stale",
				len(gone), clipList(gone, 5)))
		}
		return got, warnings, nil
	}
	for _, key := range missing {
		ns, name, _ := strings.Cut(key, "/")
		p, err := r.c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			warnings = append(warnings, fmt.Sprintf("endpoint pod %s no longer exists: the EndpointSlice may be stale", key))
		case err != nil:
			return nil, nil, r.apiError(err, "get", "pods", ns)
		default:
			got.add(p)
		}
	}
	return got, warnings, nil
}

// listPods lists the pods of a namespace ("" for all) matching selector.
func (r *reader) listPods(ctx context.Context, namespace, selector string) ([]*corev1.Pod, error) {
	return r.listPodsWith(ctx, namespace, metav1.ListOptions{LabelSelector: selector})
}

func (r *reader) listPodsWith(ctx context.Context, namespace string, opts metav1.ListOptions) ([]*corev1.Pod, error) {
	out, err := listAll(ctx, r.opts.PageSize, opts, r.c.CoreV1().Pods(namespace).List, podPage)
	if err != nil {
		return nil, r.apiError(err, "list", "pods", namespace)
	}
	return out, nil
}

// sourcePods gets the --from pod, or for an IP the pod that has it.
func (r *reader) sourcePods(ctx context.Context, src *analyze.Source) (podSet, []string, error) {
	got := podSet{}
	if src == nil {
		return got, nil, nil
	}
	switch src.Kind {
	case analyze.SourcePod:
		p, err := r.c.CoreV1().Pods(src.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil, r.podNotFound(ctx, src.Namespace, src.Name)
		}
		if err != nil {
			return nil, nil, r.apiError(err, "get", "pods", src.Namespace)
		}
		got.add(p)
	case analyze.SourceIP:
		ip := src.IP.String()
		pods, err := r.listPodsWith(ctx, "", metav1.ListOptions{FieldSelector: "status.podIP=" + ip})
		if err != nil {
			if isCanceled(err) {
				return nil, nil, err
			}
			return got, []string{fmt.Sprintf("cannot look up which pod has %s (%v): it is taken for an off-cluster client unless it is a node address", ip, err)}, nil
		}
		for _, p := range pods {
			if hasPodIP(p, src.IP) && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				got.add(p)
			}
		}
	}
	return got, nil, nil
}

func hasPodIP(p *corev1.Pod, ip netip.Addr) bool {
	if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && a == ip {
		return true
	}
	for _, x := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(x.IP); err == nil && a == ip {
			return true
		}
	}
	return false
}

// checkNodeSource checks that the --from node exists.
func checkNodeSource(nodes []*corev1.Node, name string) error {
	var names []string
	for _, n := range nodes {
		if n.Name == name {
			return nil
		}
		names = append(names, n.Name)
	}
	return nodeNotFound(name, names, true)
}

func nodeNotFound(name string, names []string, from bool) error {
	e := &NotFoundError{Kind: "node", Name: name, From: from, Suggestions: closeNames(name, names)}
	if len(e.Suggestions) == 0 && len(names) <= 10 {
		e.Known = append([]string(nil), names...)
		sort.Strings(e.Known)
	}
	return e
}

type proxyPart struct {
	cm       *corev1.ConfigMap
	ds       *appsv1.DaemonSet
	warnings []string
}

// kubeProxy reads kube-system/kube-proxy's ConfigMap and DaemonSet; any
// failure is a warning.
func (r *reader) kubeProxy(ctx context.Context) proxyPart {
	var p proxyPart
	cm, err := r.c.CoreV1().ConfigMaps(KubeSystem).Get(ctx, KubeProxyName, metav1.GetOptions{})
	switch {
	case err == nil:
		p.cm = cm
	case apierrors.IsNotFound(err):
		p.warnings = append(p.warnings, "no ConfigMap kube-system/kube-proxy: kube-proxy's mode and cluster CIDR are inferred from the node's rules")
	default:
		p.warnings = append(p.warnings, fmt.Sprintf("cannot read ConfigMap kube-system/kube-proxy (%s): kube-proxy's mode and cluster CIDR are inferred from the node's rules", shortReason(err)))
	}
	ds, err := r.c.AppsV1().DaemonSets(KubeSystem).Get(ctx, KubeProxyName, metav1.GetOptions{})
	switch {
	case err == nil:
		p.ds = ds
		if name := proxyConfigMapName(ds); name != "" && name != KubeProxyName {
			p.warnings = append(p.warnings, fmt.Sprintf("DaemonSet kube-system/kube-proxy mounts its configuration from ConfigMap %s/%s, which the analysis does not read: kube-proxy's mode and cluster CIDR are inferred from the node's rules", KubeSystem, name))
		}
	case apierrors.IsNotFound(err):
		p.warnings = append(p.warnings, "no DaemonSet kube-system/kube-proxy: kube-proxy may run as static pods or under another name, or the cluster may use another service proxy (e.g. an eBPF kube-proxy replacement)")
	default:
		p.warnings = append(p.warnings, fmt.Sprintf("cannot read DaemonSet kube-system/kube-proxy (%s)", shortReason(err)))
	}
	return p
}

// proxyConfigMapName returns the ConfigMap the kube-proxy DaemonSet
// mounts, "" when none.
func proxyConfigMapName(ds *appsv1.DaemonSet) string {
	var names []string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			if v.ConfigMap.Name == KubeProxyName {
				return KubeProxyName
			}
			names = append(names, v.ConfigMap.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}

type dnsPart struct {
	svc      *corev1.Service
	slices   []*discoveryv1.EndpointSlice
	pods     podSet
	warnings []string
}

// clusterDNS reads the cluster DNS Service, its EndpointSlices and pods,
// so that the analyzer can check the DNS path too. Failures are warnings.
func (r *reader) clusterDNS(ctx context.Context, svc *corev1.Service) dnsPart {
	var p dnsPart
	if isDNSService(svc) {
		return p
	}
	lose := "the cluster DNS path is not checked"
	dns, err := r.c.CoreV1().Services(KubeSystem).Get(ctx, KubeDNSName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		dns = nil
		l, lerr := r.c.CoreV1().Services(KubeSystem).List(ctx, metav1.ListOptions{LabelSelector: labelK8sApp + "=" + KubeDNSName})
		switch {
		case lerr != nil:
			err = lerr
		case len(l.Items) == 0:
			p.warnings = append(p.warnings, "no cluster DNS Service (kube-system/kube-dns or k8s-app=kube-dns): "+lose)
			return p
		default:
			sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
			dns, err = &l.Items[0], nil
		}
	}
	if err != nil {
		p.warnings = append(p.warnings, fmt.Sprintf("cannot read the cluster DNS Service kube-system/kube-dns (%s): %s", shortReason(err), lose))
		return p
	}
	p.svc = dns
	slices, err := r.slicesOf(ctx, dns)
	if err != nil {
		p.warnings = append(p.warnings, fmt.Sprintf("cannot read the EndpointSlices of %s/%s (%s): %s", dns.Namespace, dns.Name, shortReason(err), lose))
		return p
	}
	p.slices = slices
	pods, warns, err := r.endpointPods(ctx, dns, slices)
	if err != nil {
		p.warnings = append(p.warnings, fmt.Sprintf("cannot read the pods of %s/%s (%s): DNS endpoints are named from their EndpointSlices only", dns.Namespace, dns.Name, shortReason(err)))
		return p
	}
	p.pods = pods
	p.warnings = append(p.warnings, warns...)
	return p
}

func isDNSService(svc *corev1.Service) bool {
	return svc.Namespace == KubeSystem && (svc.Name == KubeDNSName || svc.Labels[labelK8sApp] == KubeDNSName)
}

// shortReason names an API error in a few words: "forbidden",
// "not found", or the error itself.
func shortReason(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return "forbidden"
	case apierrors.IsNotFound(err):
		return "not found"
	case apierrors.IsUnauthorized(err):
		return "unauthorized"
	}
	var fe *ForbiddenError
	if errors.As(err, &fe) {
		return "forbidden"
	}
	return err.Error()
}

// tidy sets apiVersion and kind on every object, drops what the analysis
// never reads and bloats objects.yaml (managedFields, node images), and
// sorts each kind.
func tidy(o *snapshot.Objects) {
	core := corev1.SchemeGroupVersion
	for _, x := range o.Services {
		clean(x, core.WithKind("Service"))
	}
	for _, x := range o.EndpointSlices {
		clean(x, discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"))
	}
	for _, x := range o.Pods {
		clean(x, core.WithKind("Pod"))
	}
	for _, x := range o.Nodes {
		clean(x, core.WithKind("Node"))
		x.Status.Images = nil
	}
	for _, x := range o.ConfigMaps {
		clean(x, core.WithKind("ConfigMap"))
	}
	sort.SliceStable(o.Services, func(i, j int) bool {
		return key(o.Services[i].ObjectMeta) < key(o.Services[j].ObjectMeta)
	})
	sort.SliceStable(o.EndpointSlices, func(i, j int) bool {
		return key(o.EndpointSlices[i].ObjectMeta) < key(o.EndpointSlices[j].ObjectMeta)
	})
	sort.SliceStable(o.Nodes, func(i, j int) bool { return o.Nodes[i].Name < o.Nodes[j].Name })
}

func key(m metav1.ObjectMeta) string { return m.Namespace + "/" + m.Name }

type typedObject interface {
	runtime.Object
	metav1.Object
}

func clean(obj typedObject, gvk schema.GroupVersionKind) {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	obj.SetManagedFields(nil)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func clipList(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(", and %d more", len(s)-n)
}
