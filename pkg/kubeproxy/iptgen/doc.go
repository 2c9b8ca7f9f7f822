// Package iptgen writes the iptables rules that kube-proxy's iptables proxier
// writes, as a pure function of the Kubernetes API objects (Services and
// EndpointSlices) and a few node facts, in the text form `iptables-save`
// prints them.
//
// It is test infrastructure: golden tests of the analyzer and the
// 10,000-service benchmarks need rule dumps laid out exactly as a real node
// has them, not in a simplified shape. It re-implements the behaviour (not the
// code) of syncProxyRules in kubernetes/kubernetes
// pkg/proxy/iptables/proxier.go (v1.34), of the endpoint selection in
// pkg/proxy/topology.go and pkg/proxy/endpointslicecache.go, and of the
// service-port parsing in pkg/proxy/serviceport.go. LayoutLegacy reproduces
// the older layout of kube-proxy v1.8 (the one of the datapath walkthrough).
//
// Three views of one sync are available:
//
//   - Generate: the whole `iptables-save` output of a node after kube-proxy's
//     first full sync on an otherwise empty netfilter: the rules kube-proxy
//     restores, plus the chains and jump rules it installs one by one
//     (EnsureChain/EnsureRule) and its KUBE-PROXY-CANARY monitor chains, in
//     the normalised form iptables-save prints (`-d 10.96.0.1/32`, matches
//     reordered, `MARK --set-xmark`, REJECT's default `--reject-with`, the
//     statistic probability as the kernel stores it, and so on).
//   - RestoreInput: the exact text kube-proxy hands to
//     `iptables-restore --noflush` in that sync (its own argument order,
//     `--or-mark`, unnormalised addresses), as in the expectations of
//     proxier_test.go.
//   - GenerateScale / NewScaleCluster: a synthetic but realistic large
//     cluster for benchmarks.
//
// Where kube-proxy's output depends on Go map iteration order (the order of
// services in KUBE-SERVICES, of endpoint chains when two endpoint lists are
// merged), this package uses a sorted order: services by their service-port
// name ("ns/name:port"), endpoints by "ip:port". The rules are the same; only
// the order between services, which real nodes do not fix either, is chosen.
//
// Not modelled: kubelet's own chains (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT;
// the legacy layout does add kubelet's KUBE-MARK-DROP and KUBE-FIREWALL of its
// era, because its rules jump to them), partial syncs and stale-chain
// deletion (`-X`), counters (always [0:0]), local-traffic detectors other than
// the cluster CIDR, and dual-stack in one call (call once per family).
package iptgen
