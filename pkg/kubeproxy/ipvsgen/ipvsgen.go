package ipvsgen

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// Options are the IPVS proxier's settings and the node facts that
// iptgen.Config does not carry. The zero value is kube-proxy's default.
type Options struct {
	// Scheduler is --ipvs-scheduler ("rr" when empty).
	Scheduler string
	// NoGracefulTermination leaves out the real servers of terminating
	// endpoints. By default a TCP virtual server keeps them with weight 0,
	// as kube-proxy's graceful termination does while their connections
	// drain (the node saw them ready before, and their connections have
	// not ended yet).
	NoGracefulTermination bool
	// IPSetInitval is the hash seed the kernel gave kube-proxy's hash
	// ipsets (random on a real node; `ipset save` prints it). The member
	// order of IPSetSave is computed from it.
	IPSetInitval uint32
	// NoRandomFully tells that iptables lacks --random-fully.
	NoRandomFully bool
	// Time, when set, is printed in iptables-save's "#" comment lines;
	// when zero they are left out.
	Time time.Time
}

// Node is what a node in kube-proxy IPVS mode shows after kube-proxy's
// first sync of a set of Services and EndpointSlices.
type Node struct{ n *node }

// Build runs the IPVS proxier's sync over the API objects.
func Build(cfg iptgen.Config, opts Options, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) (*Node, error) {
	cfg.Layout = iptgen.LayoutV134
	ports, err := iptgen.ServicePorts(cfg, services, slices)
	if err != nil {
		return nil, err
	}
	return &Node{build(cfg, opts, ports)}, nil
}

// IPVSADM is `ipvsadm -Ln`: the virtual servers (ClusterIPs, external IPs,
// LoadBalancer IPs, a NodePort one per node address), sorted as ipvsadm
// sorts them, their real servers with Masq forwarding, weight 1 (0 while
// draining), counters 0.
func (n *Node) IPVSADM() []byte { return n.n.ipvsadm() }

// KubeIPVS0Addrs are the addresses bound to the kube-ipvs0 dummy device:
// ClusterIPs, and external and LoadBalancer IPs that are not addresses of
// the node, sorted.
func (n *Node) KubeIPVS0Addrs() []string { return n.n.boundAddrs() }

// IPSetSave is `ipset save` of kube-proxy's sets (KUBE-6- names for IPv6).
func (n *Node) IPSetSave() []byte { return n.n.ipsetSave() }

// IPTablesSave is `iptables-save` (`ip6tables-save`) of the filter and nat
// tables in IPVS mode.
func (n *Node) IPTablesSave() ([]byte, error) { return n.n.iptablesSave() }

// IPTablesRestore returns what kube-proxy hands to iptables: setup, the
// chains and jump rules it installs with single commands (written as
// iptables-restore input, -I CHAIN 1 for its prepends), and restore, its
// `iptables-restore --noflush` input.
func (n *Node) IPTablesRestore() (setup, restore []byte) { return n.n.restoreInput() }

// IPVSADM returns `ipvsadm -Ln` for the objects with default Options, or
// nil if cfg is invalid (see Build for the error).
func IPVSADM(cfg iptgen.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []byte {
	n, err := Build(cfg, Options{}, services, slices)
	if err != nil {
		return nil
	}
	return n.IPVSADM()
}

// KubeIPVS0Addrs returns the kube-ipvs0 addresses with default Options, or
// nil if cfg is invalid.
func KubeIPVS0Addrs(cfg iptgen.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []string {
	n, err := Build(cfg, Options{}, services, slices)
	if err != nil {
		return nil
	}
	return n.KubeIPVS0Addrs()
}

// IPSetSave returns `ipset save` with default Options (initval 0), or nil
// if cfg is invalid.
func IPSetSave(cfg iptgen.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []byte {
	n, err := Build(cfg, Options{}, services, slices)
	if err != nil {
		return nil
	}
	return n.IPSetSave()
}

// IPTablesSave returns `iptables-save` of IPVS mode with default Options,
// or nil if cfg is invalid.
func IPTablesSave(cfg iptgen.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []byte {
	n, err := Build(cfg, Options{}, services, slices)
	if err != nil {
		return nil
	}
	out, err := n.IPTablesSave()
	if err != nil {
		return nil
	}
	return out
}
