package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/apiread"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Selection says which services to audit.
type Selection struct {
	// Namespace limits the audit to one namespace ("": every namespace).
	Namespace string
	// Selector is a label selector of services ("": every service).
	Selector string
	// Names are explicit services; when set, Namespace only says where
	// the names without one are.
	Names []Name
}

// Name is a service's namespace and name.
type Name struct{ Namespace, Name string }

func (n Name) String() string { return n.Namespace + "/" + n.Name }

// Cluster is what an audit reads from the API server.
type Cluster struct {
	// Objects are the API objects of the analysis and of --save.
	Objects snapshot.Objects
	// Services are the services to analyse; Skipped the ones the audit
	// only lists (headless, ExternalName, another proxy's).
	Services []*corev1.Service
	Skipped  []Skipped
	// Warnings say what could not be read, and what it costs.
	Warnings []string
}

// DefaultPageSize is the limit of each list page.
const DefaultPageSize = 500

// ReadCluster lists what an audit needs: the selected Services, the
// EndpointSlices and Pods of their namespaces, every Node, and
// kube-proxy's ConfigMap. Pods are kept with the fields the analysis reads
// only (name, namespace, node, host network, addresses), so that a cluster
// of 100,000 pods costs megabytes, not gigabytes.
func ReadCluster(ctx context.Context, c kubernetes.Interface, sel Selection) (*Cluster, error) {
	out := &Cluster{}
	o := &out.Objects
	if _, err := labels.Parse(sel.Selector); err != nil {
		return nil, fmt.Errorf("invalid -l/--selector %q: %v", sel.Selector, err)
	}

	// Services.
	var scopes []string // namespaces to list slices and pods in ("" all)
	if len(sel.Names) > 0 {
		seen := map[string]bool{}
		for _, n := range sel.Names {
			svc, err := c.CoreV1().Services(n.Namespace).Get(ctx, n.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("service %s not found (kubectl get svc -n %s lists the services of the namespace)", n, n.Namespace)
			}
			if err != nil {
				return nil, apiError(err, "get", "services", n.Namespace)
			}
			if !seen[svc.Namespace+"/"+svc.Name] {
				seen[svc.Namespace+"/"+svc.Name] = true
				o.Services = append(o.Services, svc)
			}
			if !contains(scopes, n.Namespace) {
				scopes = append(scopes, n.Namespace)
			}
		}
	} else {
		err := list(ctx, c.CoreV1().Services(sel.Namespace).List, metav1.ListOptions{LabelSelector: sel.Selector}, func(obj runtime.Object) {
			o.Services = append(o.Services, obj.(*corev1.Service))
		})
		if err != nil {
			return nil, apiError(err, "list", "services", sel.Namespace)
		}
		scopes = []string{sel.Namespace}
	}
	sort.Slice(o.Services, func(i, j int) bool {
		return o.Services[i].Namespace+"/"+o.Services[i].Name < o.Services[j].Namespace+"/"+o.Services[j].Name
	})
	wanted := map[string]bool{}
	for _, s := range o.Services {
		if need, reason := apiread.NeedsProbe(s); !need {
			out.Skipped = append(out.Skipped, Skipped{Service: s.Namespace + "/" + s.Name, Reason: reason})
			continue
		}
		out.Services = append(out.Services, s)
		wanted[s.Namespace+"/"+s.Name] = true
	}

	// EndpointSlices and Pods of the namespaces, every Node.
	for _, ns := range scopes {
		err := list(ctx, c.DiscoveryV1().EndpointSlices(ns).List, metav1.ListOptions{}, func(obj runtime.Object) {
			sl := obj.(*discoveryv1.EndpointSlice)
			if wanted[sl.Namespace+"/"+sl.Labels[discoveryv1.LabelServiceName]] {
				sl.ManagedFields = nil
				o.EndpointSlices = append(o.EndpointSlices, sl)
			}
		})
		if err != nil {
			return nil, apiError(err, "list", "endpointslices.discovery.k8s.io", ns)
		}
		err = list(ctx, c.CoreV1().Pods(ns).List, metav1.ListOptions{}, func(obj runtime.Object) {
			o.Pods = append(o.Pods, slimPod(obj.(*corev1.Pod)))
		})
		if err != nil {
			return nil, apiError(err, "list", "pods", ns)
		}
	}
	err := list(ctx, c.CoreV1().Nodes().List, metav1.ListOptions{}, func(obj runtime.Object) {
		n := obj.(*corev1.Node)
		n.ManagedFields, n.Status.Images = nil, nil
		o.Nodes = append(o.Nodes, n)
	})
	if err != nil {
		return nil, apiError(err, "list", "nodes", "")
	}
	cm, err := c.CoreV1().ConfigMaps(apiread.KubeSystem).Get(ctx, apiread.KubeProxyName, metav1.GetOptions{})
	switch {
	case err == nil:
		cm.ManagedFields = nil
		o.ConfigMaps = []*corev1.ConfigMap{cm}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		out.Warnings = append(out.Warnings, fmt.Sprintf("cannot read ConfigMap kube-system/kube-proxy (%s): kube-proxy's mode and cluster CIDR are inferred from the nodes' rules", shortReason(err)))
	}
	tidy(o)
	return out, nil
}

// list calls fn with every item of a paginated list.
func list[L runtime.Object](ctx context.Context, lf func(context.Context, metav1.ListOptions) (L, error), opts metav1.ListOptions, fn func(runtime.Object)) error {
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return lf(ctx, o) })
	p.PageSize = DefaultPageSize
	return p.EachListItem(ctx, opts, func(obj runtime.Object) error {
		fn(obj)
		return nil
	})
}

// slimPod keeps what the analysis reads of a pod.
func slimPod(p *corev1.Pod) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs, HostIP: p.Status.HostIP},
	}
}

// tidy sets apiVersion and kind (for --save) and sorts each kind.
func tidy(o *snapshot.Objects) {
	set := func(obj runtime.Object, gvk schema.GroupVersionKind) { obj.GetObjectKind().SetGroupVersionKind(gvk) }
	core := corev1.SchemeGroupVersion
	for _, x := range o.Services {
		x.ManagedFields = nil
		set(x, core.WithKind("Service"))
	}
	for _, x := range o.EndpointSlices {
		set(x, discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"))
	}
	for _, x := range o.Pods {
		set(x, core.WithKind("Pod"))
	}
	for _, x := range o.Nodes {
		set(x, core.WithKind("Node"))
	}
	for _, x := range o.ConfigMaps {
		set(x, core.WithKind("ConfigMap"))
	}
	key := func(m metav1.ObjectMeta) string { return m.Namespace + "/" + m.Name }
	sort.SliceStable(o.EndpointSlices, func(i, j int) bool { return key(o.EndpointSlices[i].ObjectMeta) < key(o.EndpointSlices[j].ObjectMeta) })
	sort.SliceStable(o.Pods, func(i, j int) bool { return key(o.Pods[i].ObjectMeta) < key(o.Pods[j].ObjectMeta) })
	sort.SliceStable(o.Nodes, func(i, j int) bool { return o.Nodes[i].Name < o.Nodes[j].Name })
}

// ChooseNodes picks the nodes to probe: the nodes matching selector (""
// every node) that are Ready. The others that match are returned as
// unreported with their Ready condition: a probe pod would never start
// there.
func ChooseNodes(nodes []*corev1.Node, selector string) (probe []string, unreported []Unreported, err error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid --nodes selector %q: %v", selector, err)
	}
	for _, n := range nodes {
		if !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		if ok, why := nodeReady(n); !ok {
			unreported = append(unreported, Unreported{Node: n.Name, Reason: "not probed: the node is not Ready (" + why + ")"})
			continue
		}
		probe = append(probe, n.Name)
	}
	sort.Strings(probe)
	return probe, unreported, nil
}

func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			return true, ""
		}
		why := "Ready=" + string(c.Status)
		if c.Reason != "" {
			why += " " + c.Reason
		}
		if m := strings.TrimRight(c.Message, ". "); m != "" {
			why += ": " + m
		}
		return false, why
	}
	return false, "no Ready condition"
}

// Request is the agent request of an audit: every rule of every service,
// so the whole rule sets (iptables-save, ip6tables-save, nft list
// ruleset) and the conntrack table (up to the agent's flow limit), not
// the part one service needs.
func Request(node string) *agentapi.Request {
	r := agentapi.NewRequest()
	r.Node = node
	r.Full = true
	return r
}

// Probe runs the probe pods of an audit (probe.Stream: at most
// concurrency at once, each deleted on every exit path) and delivers each
// node's data as it comes. The channel is closed once every node has
// been delivered; it must be drained.
func Probe(ctx context.Context, c kubernetes.Interface, cfg probe.Config, nodes []string, concurrency int) <-chan NodeData {
	in := probe.Stream(ctx, c, cfg, nodes, Request, concurrency)
	out := make(chan NodeData)
	go func() {
		defer close(out)
		for r := range in {
			out <- fromProbe(r)
		}
	}()
	return out
}

// fromProbe turns a probe's result into a node's data.
func fromProbe(r probe.NodeResult) NodeData {
	if r.Err != nil && r.Doc == nil {
		return NodeData{Node: r.Node, Reason: Reason(r.Err), Err: r.Err}
	}
	nd := NodeData{Node: r.Node}
	if r.Err != nil {
		// The document came, only the pod's delete failed.
		nd.Warnings = append(nd.Warnings, r.Err.Error())
	}
	n, unknown := snapshot.NodeFromDocument(r.Node, r.Doc)
	if len(unknown) > 0 {
		nd.Warnings = append(nd.Warnings, fmt.Sprintf("the agent wrote files this plugin does not read (%s): is the agent image newer than the plugin?", strings.Join(unknown, ", ")))
	}
	for _, e := range r.Doc.Errors {
		nd.Warnings = append(nd.Warnings, fmt.Sprintf("the agent could not read %s: %s", e.What, e.Error))
	}
	nd.Data = n
	return nd
}

// Reason says in one line why a node did not report: the kind of failure
// first, then the probe's own message (its first line; events follow on
// the next lines of the error).
func Reason(err error) string {
	var (
		pull     *probe.ImagePullError
		psa      *probe.PodSecurityError
		forbid   *probe.ForbiddenError
		adm      *probe.AdmissionError
		timeout  *probe.TimeoutError
		node     *probe.NodeError
		agent    *probe.AgentError
		deadline *probe.DeadlineError
		doc      *probe.DocumentError
		notStart *probe.NotStartedError
	)
	kind := "probe failed"
	switch {
	case errors.As(err, &notStart):
		kind = "not probed"
	case errors.As(err, &pull):
		kind = "image pull failed"
	case errors.As(err, &psa):
		kind = "rejected by Pod Security admission"
	case errors.As(err, &forbid):
		kind = "forbidden (RBAC)"
	case errors.As(err, &adm):
		kind = "rejected by admission"
	case errors.As(err, &timeout):
		kind = "timed out"
	case errors.As(err, &node) && node.Reason == "NotFound":
		kind = "node gone"
	case errors.As(err, &node) && node.Reason == "Deleted":
		kind = "probe pod deleted (node gone?)"
	case errors.As(err, &node):
		kind = "pod could not run"
	case errors.As(err, &agent):
		kind = "agent failed"
	case errors.As(err, &deadline):
		kind = "deadline exceeded"
	case errors.As(err, &doc):
		kind = "unreadable agent output"
	case errors.Is(err, context.Canceled):
		kind = "interrupted"
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return kind + ": " + msg
}

// apiError says which permission or request failed.
func apiError(err error, verb, resource, ns string) error {
	where := "in namespace " + ns
	if ns == "" {
		where = "in all namespaces"
	}
	if resource == "nodes" {
		where = "(cluster-wide)"
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("cannot %s %s %s: forbidden: the audit needs get and list on services, list on endpointslices, pods and nodes (see docs/rbac.yaml): %w", verb, resource, where, err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
}

func shortReason(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return "forbidden"
	case apierrors.IsNotFound(err):
		return "not found"
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
