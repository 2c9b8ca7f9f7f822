// Package nftgen writes what a node shows after kube-proxy's nftables
// proxier synced a set of Services and EndpointSlices: exactly the text
// `nft list table ip kube-proxy` (`ip6 kube-proxy` with cfg.IPv6) prints, as
// a pure function of the API objects and the node facts of iptgen.Config.
//
// It is test infrastructure, like iptgen: golden tests and benchmarks need
// nftables dumps laid out exactly as a real node has them. It re-implements
// the behaviour (not the code) of setupNFTables and syncProxyRules in
// kubernetes/kubernetes pkg/proxy/nftables/proxier.go (v1.34), and shares
// iptgen's model of service ports and endpoint selection (iptgen.ServicePorts:
// Cluster/Local traffic policies, topology hints, terminating-endpoint
// fallback). Chain names are kube-proxy's (kubeproxy.NFTServiceChains,
// kubeproxy.NFTEndpointChain: an 8-character hash of
// "ns/name/proto/port[__ip/port]" in front of it).
//
// Modelled:
//
//   - the table and its comment; the cluster-ips set, nodeport-ips (only
//     with --nodeport-addresses CIDRs), the no-endpoint-services,
//     no-endpoint-nodeports, firewall-ips, service-ips and service-nodeports
//     verdict maps; the base chains (filter-prerouting-pre-dnat and
//     filter-output-pre-dnat at dstnat-10, filter-input/forward/output at
//     filter, nat-prerouting/output at dstnat, nat-postrouting at srcnat) and
//     the services, masquerading, mark-for-masquerade, cluster-ips-check,
//     nodeport-endpoints-check, service-endpoints-check, firewall-check and
//     reject-chain chains;
//   - per service port: service-, local- (Local traffic policies),
//     external- (NodePort, external IPs, LoadBalancer IPs; masquerade, or for
//     externalTrafficPolicy Local the pod/local-traffic short-circuits),
//     firewall- (loadBalancerSourceRanges, the LB IPs admitted when a range
//     holds the node IP) and endpoint- chains (hairpin masquerade, DNAT);
//     numgen load balancing; ClientIP session affinity (affinity- sets with
//     their timeout, update and lookup rules); drop/reject elements for
//     services without (local) endpoints; TCP, UDP, SCTP; IPv4 or IPv6;
//     --masquerade-all, --masquerade-bit, no local-traffic detector (empty
//     ClusterCIDR); the service CIDRs of Options (the ServiceCIDR objects).
//   - nft's listing: objects in creation order (sets first, then chains),
//     canonical rule spelling (`meta mark & 0x00004000 == 0x00000000
//     return`, single-element anonymous sets as plain values, interval sets
//     merged), set elements sorted as nft sorts them (numerically for
//     addresses; concatenations by their bytes read in little-endian host
//     order) and wrapped as nft wraps them (two IPv4 addresses a line, one
//     concatenation or IPv6 address a line), timeouts as "3h", priorities
//     as "dstnat - 10" or a number where the name does not apply to the hook,
//     the "size 65535" nft gives affinity sets created together with their
//     update rule. The listing is that of nft 1.0.6 on a little-endian
//     host; the kernel tests check it against the installed nft.
//
// Transaction returns the nft commands of the same sync in kube-proxy's
// order: loaded into an empty namespace they list as Generate's output,
// which the kernel tests verify.
//
// Where kube-proxy's order depends on Go map iteration (the order in which
// service ports create their chains and affinity sets), this package uses
// the service-port name order, as iptgen does; element order does not
// depend on it (nft sorts elements). The real sample of the package tests
// (two services) is reproduced byte for byte.
//
// Not modelled: later (partial) syncs, stale chains and their deferred
// deletion, a kube-proxy restart on a node that already has the table
// (which re-creates the base chains at the end of the chain list), dynamic
// content (affinity set elements, counters), the health-check node ports
// (served by kube-proxy, not by rules), localhost NodePorts (nftables mode
// has none), local-traffic detectors other than the cluster CIDR, and
// dual-stack in one call (call once per family).
package nftgen
