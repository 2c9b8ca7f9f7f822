package nftgen

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// Options are the inputs of the nftables proxier that iptgen.Config does
// not carry.
type Options struct {
	// ServiceCIDRs are the cluster's service CIDRs (the ServiceCIDR
	// objects kube-proxy watches; by default the apiserver's
	// --service-cluster-ip-range). Only those of the generated family are
	// used. kube-proxy writes the cluster-ips-check rule "Drop traffic to
	// unallocated ClusterIPs" only when it knows some; so does Generate.
	ServiceCIDRs []string
}

// Generate returns exactly what `nft list table ip kube-proxy` (with
// cfg.IPv6, `nft list table ip6 kube-proxy`) prints on a node after
// kube-proxy v1.34's nftables proxier made its first full sync of the given
// Services and EndpointSlices, with no service CIDRs known (see
// GenerateWithOptions). See the package documentation for what is modelled.
func Generate(cfg iptgen.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]byte, error) {
	return GenerateWithOptions(cfg, Options{}, services, slices)
}

// GenerateWithOptions is Generate with the service CIDRs (and any later
// option) given.
func GenerateWithOptions(cfg iptgen.Config, opts Options, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]byte, error) {
	b, err := build(cfg, opts, services, slices)
	if err != nil {
		return nil, err
	}
	return b.listing(), nil
}

// Transaction returns the nft commands of that same sync, in kube-proxy's
// order (the transaction its knftables hands to `nft -f -`): loaded with
// `nft -f` into a network namespace without a kube-proxy table, it produces
// exactly what GenerateWithOptions returns. Priorities are written as
// numbers, which every nft version accepts.
func Transaction(cfg iptgen.Config, opts Options, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]byte, error) {
	b, err := build(cfg, opts, services, slices)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b.tx.Bytes()...), nil
}

func build(cfg iptgen.Config, opts Options, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) (*builder, error) {
	cfg.Layout = iptgen.LayoutV134
	ports, err := iptgen.ServicePorts(cfg, services, slices)
	if err != nil {
		return nil, err
	}
	return sync(cfg, opts, ports), nil
}

// ScaleServiceCIDR is the service CIDR of iptgen.NewScaleCluster's
// ClusterIPs.
const ScaleServiceCIDR = "10.96.0.0/12"

// GenerateScale builds iptgen.NewScaleCluster(nServices,
// endpointsPerService, seed) and the `nft list table ip kube-proxy` output
// of its node (service CIDR ScaleServiceCIDR).
func GenerateScale(nServices, endpointsPerService int, seed int64) (iptgen.ScaleCluster, []byte, error) {
	sc := iptgen.NewScaleCluster(nServices, endpointsPerService, seed)
	out, err := GenerateWithOptions(sc.Config, Options{ServiceCIDRs: []string{ScaleServiceCIDR}}, sc.Services, sc.Slices)
	return sc, out, err
}
