// Package ipvsgen writes what a node shows when kube-proxy runs in IPVS mode,
// as a pure function of Services, EndpointSlices and the node facts of
// iptgen.Config: `ipvsadm -Ln`, the addresses of the kube-ipvs0 dummy
// device, `ipset save` and `iptables-save`. Like iptgen and nftgen it is test
// infrastructure. It re-implements the behaviour (not the code) of
// syncProxyRules, syncService, syncEndpoint and writeIptablesRules in
// kubernetes/kubernetes pkg/proxy/ipvs/proxier.go (v1.34), over iptgen's model
// of service ports and endpoint selection (iptgen.ServicePorts).
//
// Modelled:
//
//   - virtual servers for every ClusterIP, external IP and LoadBalancer IP,
//     and a NodePort one for each node address (cfg.NodeIPs of the family,
//     loopback and IPv6 link-local left out, or those inside
//     --nodeport-addresses); scheduler (Options.Scheduler, rr by default);
//     "persistent TIMEOUT" for ClientIP affinity; real servers with Masq
//     forwarding and weight 1: the Cluster endpoints, or for a Local policy
//     the local ones, falling back to the Cluster ones when there are none
//     (kube-proxy's kubernetes#97081 behaviour); terminating endpoints of
//     TCP services with weight 0 as graceful termination leaves them while
//     connections drain (Options.NoGracefulTermination drops them).
//     `ipvsadm -Ln` is laid out as ipvsadm prints it (column widths,
//     "SCTP 1.2.3.4:53", "[v6]:port") and sorted as libipvs sorts, its
//     wrapping C-int address comparison included (192.168.x.y lists before
//     1.2.3.4, which lists before 10.x.y.z).
//   - kube-ipvs0: ClusterIPs, and external and LB IPs that are not node
//     addresses.
//   - the 17 ipsets (KUBE-6- names, cut to 31 characters, for IPv6) with
//     kube-proxy's members, and `ipset save`'s text: "bucketsize 12
//     initval 0x…" in the create lines, /32 and /128 networks as addresses,
//     bitmap members by port and hash members in the kernel's order, which
//     this package computes (jhash2 buckets with Options.IPSetInitval, the
//     table doubling when a bucket exceeds 12 members, kube-proxy adding
//     members in sorted order); the kernel tests check it member for member.
//   - iptables: the nat and filter chains and jumps of IPVS mode
//     (KUBE-SERVICES with `-m set --match-set KUBE-CLUSTER-IP dst,dst`,
//     KUBE-LOAD-BALANCER, KUBE-NODE-PORT, KUBE-POSTROUTING, KUBE-MARK-MASQ,
//     KUBE-FORWARD, KUBE-PROXY-FIREWALL, KUBE-SOURCE-RANGES-FIREWALL,
//     KUBE-IPVS-FILTER, KUBE-IPVS-OUT-FILTER), in iptables-save's normalised
//     form; IPTablesRestore gives kube-proxy's own commands, which the
//     kernel tests load and compare with IPTablesSave.
//
// Not modelled: real IPVS state (connection counters are always 0; the
// kernel of the tests need not have IPVS), later syncs and the history
// graceful termination depends on (a terminating endpoint is assumed to
// have been ready before and to still have connections), the "mh"
// scheduler's flags, other node addresses than cfg.NodeIPs (a pod bridge
// address, for instance, would also get NodePort virtual servers on a real
// node), the order in which a real kube-proxy creates its ipsets (a Go map
// walk; ipsetInfo order here), kubelet's chains and iptables canary
// chains, --ipvs-exclude-cidrs, strict ARP and the IPVS timeouts, and
// dual-stack in one call (call once per family).
package ipvsgen
