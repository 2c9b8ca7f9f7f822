package analyze

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
)

// Source kinds of --from.
const (
	SourcePod  = "pod"
	SourceNode = "node"
	SourceIP   = "ip"
)

// ErrBadSource is returned (wrapped) for a --from value that cannot be
// used.
var ErrBadSource = errors.New("bad --from source")

// Source is the client of a traced connection (--from).
type Source struct {
	Kind      string
	Namespace string // pods
	Name      string // pods and nodes
	IP        netip.Addr
}

// ParseSource reads a --from value: pod/NAME (in defaultNS), pod/NS/NAME,
// NS/NAME (a pod), node/NAME, or an IP address (an off-cluster client).
func ParseSource(s, defaultNS string) (Source, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Source{}, fmt.Errorf("%w: empty", ErrBadSource)
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return Source{Kind: SourceIP, IP: ip.Unmap()}, nil
	}
	parts := strings.Split(s, "/")
	for _, p := range parts {
		if p == "" {
			return Source{}, fmt.Errorf("%w: %q has an empty part; use pod/NAME, pod/NAMESPACE/NAME, node/NAME or an IP address", ErrBadSource, s)
		}
	}
	switch {
	case len(parts) == 2 && (parts[0] == "node" || parts[0] == "nodes" || parts[0] == "no"):
		return Source{Kind: SourceNode, Name: parts[1]}, nil
	case len(parts) == 2 && (parts[0] == "pod" || parts[0] == "pods" || parts[0] == "po"):
		return Source{Kind: SourcePod, Namespace: defaultNS, Name: parts[1]}, nil
	case len(parts) == 3 && (parts[0] == "pod" || parts[0] == "pods" || parts[0] == "po"):
		return Source{Kind: SourcePod, Namespace: parts[1], Name: parts[2]}, nil
	case len(parts) == 2:
		return Source{Kind: SourcePod, Namespace: parts[0], Name: parts[1]}, nil
	}
	return Source{}, fmt.Errorf("%w: %q; use pod/NAME, pod/NAMESPACE/NAME, NAMESPACE/NAME (a pod), node/NAME or an IP address", ErrBadSource, s)
}

func (s Source) String() string {
	switch s.Kind {
	case SourcePod:
		return fmt.Sprintf("pod %s/%s", s.Namespace, s.Name)
	case SourceNode:
		return "node " + s.Name
	}
	return "off-cluster client " + s.IP.String()
}

// resolvedSource is a source tied to the cluster: its address and the
// node whose state it meets first.
type resolvedSource struct {
	Source
	node string
	pod  *corev1.Pod
}

// resolve finds the source in the API objects and the node data.
func (s Source) resolve(c *cluster.Cluster, nodes []string, family string) (resolvedSource, error) {
	rs := resolvedSource{Source: s}
	has := func(n string) bool {
		for _, x := range nodes {
			if x == n {
				return true
			}
		}
		return false
	}
	switch s.Kind {
	case SourcePod:
		var pod *corev1.Pod
		var sameName []string
		for _, p := range c.Pods() {
			if p.Name == s.Name {
				if p.Namespace == s.Namespace {
					pod = p
				}
				sameName = append(sameName, p.Namespace+"/"+p.Name)
			}
		}
		if pod == nil {
			msg := fmt.Sprintf("%v: pod %s/%s is not in the snapshot", ErrBadSource, s.Namespace, s.Name)
			if len(sameName) > 0 {
				msg += "; pods of that name: " + strings.Join(sameName, ", ")
			}
			return rs, &wrapped{msg, ErrBadSource}
		}
		rs.pod, rs.node = pod, pod.Spec.NodeName
		if pod.Spec.HostNetwork {
			rs.Kind = SourceNode
			rs.Name = pod.Spec.NodeName
		} else {
			ip := podIP(pod, family)
			if !ip.IsValid() {
				return rs, &wrapped{fmt.Sprintf("%v: pod %s/%s has no %s address (not running?)", ErrBadSource, s.Namespace, s.Name, family), ErrBadSource}
			}
			rs.IP = ip
		}
		if rs.node == "" {
			return rs, &wrapped{fmt.Sprintf("%v: pod %s/%s is not scheduled on a node", ErrBadSource, s.Namespace, s.Name), ErrBadSource}
		}
		if !has(rs.node) {
			return rs, &wrapped{fmt.Sprintf("%v: pod %s/%s runs on %s, which has no node data in the snapshot (nodes with data: %s)", ErrBadSource, s.Namespace, s.Name, rs.node, strings.Join(nodes, ", ")), ErrBadSource}
		}
	case SourceNode:
		if !has(s.Name) {
			return rs, &wrapped{fmt.Sprintf("%v: node %s has no node data in the snapshot (nodes with data: %s)", ErrBadSource, s.Name, strings.Join(nodes, ", ")), ErrBadSource}
		}
		rs.node = s.Name
	case SourceIP:
		if len(nodes) == 0 {
			return rs, &wrapped{fmt.Sprintf("%v: no node data to trace %s on", ErrBadSource, s.IP), ErrBadSource}
		}
		rs.node = nodes[0]
		if pod := c.PodByIP(s.IP); pod != nil {
			rs.Kind, rs.Namespace, rs.Name, rs.pod, rs.node = SourcePod, pod.Namespace, pod.Name, pod, pod.Spec.NodeName
			if !has(rs.node) {
				return rs, &wrapped{fmt.Sprintf("%v: %s is pod %s/%s on %s, which has no node data in the snapshot", ErrBadSource, s.IP, pod.Namespace, pod.Name, rs.node), ErrBadSource}
			}
		} else if n := c.NodeOfAddr(s.IP); n != "" && has(n) {
			rs.Kind, rs.Name, rs.node = SourceNode, n, n
		}
	}
	return rs, nil
}

func podIP(p *corev1.Pod, family string) netip.Addr {
	ips := []string{p.Status.PodIP}
	for _, x := range p.Status.PodIPs {
		ips = append(ips, x.IP)
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && familyOf(a) == family {
			return a
		}
	}
	return netip.Addr{}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }
