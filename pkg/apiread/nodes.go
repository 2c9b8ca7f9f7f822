package apiread

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// NodeOptions say which nodes to probe.
type NodeOptions struct {
	// Explicit are the --node names: exactly these are probed (plus the
	// --from node, where a trace starts).
	Explicit []string
	// From is the raw --from value (see Options.From).
	From string
	// AllNodes probes every Ready node (--all-nodes).
	AllNodes bool
}

// NodeChoice is the nodes to probe and why.
type NodeChoice struct {
	// Nodes are sorted and distinct.
	Nodes []string
	// Why says, for each chosen node, why it was chosen ("--node",
	// "--from pod default/client", "endpoints default/nginx1, ...",
	// "no endpoint node: a Ready node to see the rules", "--all-nodes").
	Why map[string]string
	// Skipped are the nodes that would have been chosen but cannot be
	// probed (NotReady endpoint nodes, endpoints on unknown nodes), with
	// the reason: worth a warning.
	Skipped []SkippedNode
}

// SkippedNode is a node Choose left out.
type SkippedNode struct {
	Name, Reason string
}

// ChooseNodes returns the nodes to probe, sorted and distinct: the
// explicit --node names; else with allNodes every Ready node; else the
// nodes of the service's endpoints (the endpoint's nodeName, else its
// pod's spec.nodeName) and the node of --from; and when that gives none,
// one Ready node, a schedulable worker without control-plane taints when
// there is one (the first by name). The --from node is always included.
//
// An explicit node that does not exist is an error naming close names
// (ErrNodeNotFound); an explicit or --from node that is not Ready is an
// error (ErrNodeNotReady): the agent would never start there. NotReady
// endpoint nodes are left out (NodeChoice.Skipped, see Choose).
func ChooseNodes(objs *snapshot.Objects, svc *corev1.Service, explicit []string, from string, allNodes bool) ([]string, error) {
	c, err := Choose(objs, svc, NodeOptions{Explicit: explicit, From: from, AllNodes: allNodes})
	if err != nil {
		return nil, err
	}
	return c.Nodes, nil
}

// Choose is ChooseNodes with the reasons and the skipped nodes.
func Choose(objs *snapshot.Objects, svc *corev1.Service, opts NodeOptions) (*NodeChoice, error) {
	if len(opts.Explicit) > 0 && opts.AllNodes {
		return nil, fmt.Errorf("--node and --all-nodes cannot be used together")
	}
	nodes := map[string]*corev1.Node{}
	var names, ready []string
	for _, n := range objs.Nodes {
		nodes[n.Name] = n
		names = append(names, n.Name)
		if isReady(n) {
			ready = append(ready, n.Name)
		}
	}
	sort.Strings(names)
	sort.Strings(ready)
	ch := &NodeChoice{Why: map[string]string{}}
	add := func(name, why string) {
		if _, ok := ch.Why[name]; !ok {
			ch.Why[name] = why
		}
	}
	notReady := func(name, why string) error {
		return &NodeNotReadyError{Name: name, Condition: readyCondition(nodes[name]), Why: why, ReadyNodes: clip(ready, 10)}
	}

	// The --from node first: a trace needs it whatever else is chosen.
	if opts.From != "" {
		node, desc, err := sourceNode(objs, svc, opts.From, nodes, names)
		if err != nil {
			return nil, err
		}
		if node != "" {
			if !isReady(nodes[node]) {
				return nil, notReady(node, "--from")
			}
			add(node, "--from "+desc)
		}
	}

	switch {
	case len(opts.Explicit) > 0:
		for _, raw := range opts.Explicit {
			name := strings.TrimSpace(raw)
			if name == "" {
				continue
			}
			if nodes[name] == nil {
				return nil, nodeNotFound(name, names, false)
			}
			if !isReady(nodes[name]) {
				return nil, notReady(name, "--node")
			}
			add(name, "--node")
		}
	case opts.AllNodes:
		if len(ready) == 0 {
			return nil, noReadyNode(names)
		}
		for _, n := range ready {
			add(n, "--all-nodes")
		}
	default:
		eps := endpointNodes(objs, svc)
		for _, name := range sortedKeys(keysOf(eps)) {
			pods := eps[name]
			switch {
			case nodes[name] == nil:
				ch.Skipped = append(ch.Skipped, SkippedNode{name, fmt.Sprintf("endpoints %s are on node %s, which is not a node of the cluster", clipList(pods, 3), name)})
			case !isReady(nodes[name]):
				ch.Skipped = append(ch.Skipped, SkippedNode{name, fmt.Sprintf("endpoints %s are on node %s, which is not Ready (%s): it cannot be probed", clipList(pods, 3), name, readyCondition(nodes[name]))})
			default:
				add(name, "endpoints "+clipList(pods, 3))
			}
		}
		if len(ch.Why) == 0 {
			n := preferredNode(objs.Nodes)
			if n == "" {
				return nil, noReadyNode(names)
			}
			add(n, "no endpoint node to probe: a Ready node to see the service's rules")
		}
	}
	ch.Nodes = sortedKeys(keysOf(ch.Why))
	return ch, nil
}

func noReadyNode(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: the cluster has no nodes", ErrNoReadyNode)
	}
	return fmt.Errorf("%w: none of the cluster's %d node(s) is Ready (%s), so none can be probed", ErrNoReadyNode, len(names), clipList(names, 5))
}

// sourceNode returns the node where a --from client's connection starts
// ("" for an off-cluster IP) and how to name the client.
func sourceNode(objs *snapshot.Objects, svc *corev1.Service, from string, nodes map[string]*corev1.Node, names []string) (string, string, error) {
	src, err := analyze.ParseSource(from, svc.Namespace)
	if err != nil {
		return "", "", err
	}
	switch src.Kind {
	case analyze.SourceNode:
		if nodes[src.Name] == nil {
			return "", "", nodeNotFound(src.Name, names, true)
		}
		return src.Name, "node " + src.Name, nil
	case analyze.SourcePod:
		for _, p := range objs.Pods {
			if p.Namespace == src.Namespace && p.Name == src.Name {
				if p.Spec.NodeName == "" {
					return "", "", fmt.Errorf("%w: pod %s/%s is not scheduled on a node", analyze.ErrBadSource, p.Namespace, p.Name)
				}
				if nodes[p.Spec.NodeName] == nil {
					return "", "", fmt.Errorf("%w: pod %s/%s runs on node %s, which is not a node of the cluster", analyze.ErrBadSource, p.Namespace, p.Name, p.Spec.NodeName)
				}
				return p.Spec.NodeName, fmt.Sprintf("pod %s/%s", p.Namespace, p.Name), nil
			}
		}
		var inNS []string
		for _, p := range objs.Pods {
			if p.Namespace == src.Namespace {
				inNS = append(inNS, p.Name)
			}
		}
		return "", "", &NotFoundError{Kind: "pod", Namespace: src.Namespace, Name: src.Name, From: true, Suggestions: closeNames(src.Name, inNS)}
	case analyze.SourceIP:
		for _, p := range objs.Pods {
			if !p.Spec.HostNetwork && hasPodIP(p, src.IP) && nodes[p.Spec.NodeName] != nil {
				return p.Spec.NodeName, fmt.Sprintf("pod %s/%s (%s)", p.Namespace, p.Name, src.IP), nil
			}
		}
		for _, n := range objs.Nodes {
			for _, a := range n.Status.Addresses {
				if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Unmap() == src.IP {
					return n.Name, fmt.Sprintf("node %s (%s)", n.Name, src.IP), nil
				}
			}
		}
	}
	return "", "", nil
}

// endpointNodes maps each node that hosts an endpoint of svc to the
// endpoints there (pod names, else addresses).
func endpointNodes(objs *snapshot.Objects, svc *corev1.Service) map[string][]string {
	byName := map[string]*corev1.Pod{}
	byIP := map[netip.Addr]*corev1.Pod{}
	for _, p := range objs.Pods {
		byName[p.Namespace+"/"+p.Name] = p
		if p.Spec.HostNetwork {
			continue
		}
		for _, s := range podIPs(p) {
			if ip, err := netip.ParseAddr(s); err == nil {
				byIP[ip] = p
			}
		}
	}
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, sl := range objs.EndpointSlices {
		if sl.Namespace != svc.Namespace || sl.Labels[labelServiceName] != svc.Name {
			continue
		}
		for _, ep := range sl.Endpoints {
			var pod *corev1.Pod
			desc := strings.Join(ep.Addresses, ",")
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				ns := ref.Namespace
				if ns == "" {
					ns = sl.Namespace
				}
				pod = byName[ns+"/"+ref.Name]
				desc = ns + "/" + ref.Name
			}
			if pod == nil {
				for _, a := range ep.Addresses {
					if ip, err := netip.ParseAddr(a); err == nil && byIP[ip] != nil {
						pod = byIP[ip]
						break
					}
				}
			}
			node := ""
			switch {
			case ep.NodeName != nil && *ep.NodeName != "":
				node = *ep.NodeName
			case pod != nil:
				node = pod.Spec.NodeName
			}
			if node == "" || seen[node+" "+desc] {
				continue
			}
			seen[node+" "+desc] = true
			out[node] = append(out[node], desc)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// preferredNode picks one Ready node, the first by name of the best
// kind: a schedulable node with no NoSchedule/NoExecute taint and no
// control-plane role; else a schedulable one without control-plane taints;
// else a node that is not a control plane; else any Ready node.
func preferredNode(nodes []*corev1.Node) string {
	best, bestRank := "", 99
	for _, n := range nodes {
		if !isReady(n) {
			continue
		}
		cp := isControlPlane(n) || controlPlaneTainted(n)
		var rank int
		switch {
		case !n.Spec.Unschedulable && !hardTainted(n) && !cp:
			rank = 0
		case !n.Spec.Unschedulable && !controlPlaneTainted(n):
			rank = 1
		case !cp:
			rank = 2
		default:
			rank = 3
		}
		if rank < bestRank || rank == bestRank && n.Name < best {
			best, bestRank = n.Name, rank
		}
	}
	return best
}

const (
	labelControlPlane = "node-role.kubernetes.io/control-plane"
	labelMaster       = "node-role.kubernetes.io/master"
	labelServiceName  = "kubernetes.io/service-name"
)

func controlPlaneTainted(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == labelControlPlane || t.Key == labelMaster {
			return true
		}
	}
	return false
}

func hardTainted(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func isControlPlane(n *corev1.Node) bool {
	_, cp := n.Labels[labelControlPlane]
	_, m := n.Labels[labelMaster]
	return cp || m
}

// isReady tells whether the node's Ready condition is True.
func isReady(n *corev1.Node) bool {
	if n == nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyCondition describes a node's Ready condition for a message.
func readyCondition(n *corev1.Node) string {
	if n == nil {
		return "unknown node"
	}
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		s := "Ready=" + string(c.Status)
		if c.Reason != "" {
			s += " " + c.Reason
		}
		if c.Message != "" {
			s += ": " + c.Message
		}
		if !c.LastTransitionTime.IsZero() {
			s += ", since " + c.LastTransitionTime.UTC().Format("2006-01-02T15:04:05Z")
		}
		return s
	}
	return "no Ready condition"
}

func podIPs(p *corev1.Pod) []string {
	out := []string{}
	if p.Status.PodIP != "" {
		out = append(out, p.Status.PodIP)
	}
	for _, x := range p.Status.PodIPs {
		if x.IP != p.Status.PodIP {
			out = append(out, x.IP)
		}
	}
	return out
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func clip(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
