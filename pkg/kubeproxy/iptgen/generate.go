package iptgen

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// build runs the chosen layout's sync over the API objects.
func build(cfg Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) (*ruleset, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ports := buildServicePorts(&cfg, services)
	eps := buildEndpoints(&cfg, slices)
	if cfg.Layout == LayoutLegacy {
		return buildLegacy(&cfg, ports, eps)
	}
	return buildV134(&cfg, ports, eps)
}

// Generate returns the `iptables-save` (or, with cfg.IPv6, `ip6tables-save`)
// output of a node whose only netfilter user is kube-proxy, after its first
// full sync of the given Services and EndpointSlices. Tables come in the
// order iptables-nft prints them (mangle, filter, nat; the legacy layout has
// no mangle table); see the package documentation for what is and is not
// modelled.
func Generate(cfg Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]byte, error) {
	rs, err := build(cfg, services, slices)
	if err != nil {
		return nil, err
	}
	return rs.save(cfg.Time)
}

// RestoreInput returns the text kube-proxy passes to
// `iptables-restore --noflush --counters` in that sync: its *filter and *nat
// tables, in kube-proxy's own argument order and spelling (unnormalised
// addresses, `--or-mark`, quoted comments only where kube-proxy quotes them).
// The jump rules from the built-in chains and the canary chains are not part
// of it: kube-proxy installs them with single iptables commands.
func RestoreInput(cfg Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]byte, error) {
	rs, err := build(cfg, services, slices)
	if err != nil {
		return nil, err
	}
	return rs.restore(), nil
}
