// Package nodestate is the parse stage for one node: it turns the raw files
// of a snapshot node (iptables-save, ip -j ..., conntrack -L) into parsed
// values, once, so that the analyzer only reads data. Parse errors are kept
// as data: analysis goes on with what could be read.
package nodestate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/ipvs"
	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
	"github.com/svcpath/kubectl-svcpath/pkg/nft"
	"github.com/svcpath/kubectl-svcpath/pkg/route"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Node is the parsed state of one node.
type Node struct {
	Name string
	// IPv4 and IPv6 are the parsed iptables-save / ip6tables-save dumps;
	// nil when the file is absent or unreadable (see the Err fields).
	IPv4, IPv6       *iptables.Dump
	IPv4Err, IPv6Err error
	// HasIPv4Dump / HasIPv6Dump tell whether the file was present.
	HasIPv4Dump, HasIPv6Dump bool
	// Partial: only the chains relevant to one service were collected.
	Partial bool
	// LocalAddrs are the node's own addresses: from ip-addr when present,
	// else the Node object's InternalIP/ExternalIP addresses.
	LocalAddrs     []netip.Addr
	LocalAddrsFrom string
	// Datapath markers found in the node data.
	HasNFTKubeProxy bool
	// NFT is the parsed nftables ruleset (nil without one, or when NFTErr).
	NFT    *nft.Ruleset
	NFTErr error
	// nftKube holds kube-proxy's nftables table of each family ("IPv4":
	// ip kube-proxy, "IPv6": ip6 kube-proxy) with that family's iptables
	// rules; nftCache their translations by focus.
	nftKube  map[string]nftSource
	nftMu    sync.Mutex
	nftCache map[string]nftResult
	// IPVS is the IPVS table (ipvsadm -Ln); IPSets the ipset members.
	IPVS          *ipvs.State
	IPVSErr       error
	IPSets        *iptables.IPSets
	HasIPVS       bool
	HasCilium     bool
	HasCalicoEBPF bool
	// Links are the node's interfaces with their addresses (ip-link and
	// ip-addr); nil when ip-link is absent or unreadable.
	Links *netdev.Set
	// FIB answers route lookups (ip-route, ip-rule); nil without ip-route.
	FIB *route.FIB
	// DevRoutes are the connected routes, for mapping pod IPs to host
	// interfaces.
	DevRoutes []netdev.DevRoute
	// PodNetns maps a pod address to its eth0 as seen from inside the pod
	// (pod-interfaces file): it ties bridged pods to their bridge port.
	PodNetns map[netip.Addr]netdev.PodNetns
	// Conntrack is the parsed `conntrack -L`; nil when absent.
	Conntrack *ctflow.Dump
	// ConntrackStats is the agent's conntrack-stats file (the table's
	// fill and the kernel's per-CPU counters); nil when absent or
	// unreadable.
	ConntrackStats *agentapi.ConntrackStats
	// ProxyHealth is kube-proxy's healthz answer (kube-proxy-healthz
	// file); nil when absent or unreadable.
	ProxyHealth *ProxyHealth
	// Sysctl maps each key of the sysctl file (`sysctl -a`) to its value;
	// nil when the file is absent.
	Sysctl Sysctls
	// CollectedAt is meta.json's collectedAt; zero when unknown.
	CollectedAt time.Time
	// Verify are the connections the agent made (--verify, the verify
	// file), each with its conntrack line parsed; nil when absent.
	Verify []Verified
	// Problems are parse errors of the optional files: analysis goes on
	// without what they would have said.
	Problems []string
}

// Parse parses a snapshot node. apiAddrs are the Node object's addresses,
// used when the node data has no ip-addr file.
func Parse(n *snapshot.Node, apiAddrs []netip.Addr) *Node {
	st := &Node{Name: n.Name}
	if n.Meta != nil {
		st.Partial = n.Meta.Partial
		if c := n.Meta.CollectedAt; c != "" {
			t, err := agentapi.ParseTime(c)
			if err != nil {
				st.Problems = append(st.Problems, fmt.Sprintf("meta.json: collectedAt %q unreadable: %v", c, err))
			} else {
				st.CollectedAt = t
			}
		}
	}
	if n.IPTablesSave != nil {
		st.HasIPv4Dump = true
		st.IPv4, st.IPv4Err = iptables.Parse(n.IPTablesSave)
	}
	if n.IP6TablesSave != nil {
		st.HasIPv6Dump = true
		st.IPv6, st.IPv6Err = iptables.Parse(n.IP6TablesSave)
	}
	if n.IPLink != nil || n.IPAddr != nil {
		links, err := parseLinks(n.IPLink, n.IPAddr)
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("ip-link/ip-addr unreadable: %v", err))
		} else {
			st.Links = links
		}
	}
	if addrs := st.Links.LocalAddrs(""); len(addrs) > 0 {
		st.LocalAddrs, st.LocalAddrsFrom = addrs, "ip-addr"
	} else {
		st.LocalAddrs, st.LocalAddrsFrom = apiAddrs, "Node object"
	}
	if n.IPRoute != nil {
		routes, err := route.ParseRoutes(n.IPRoute)
		var rules []route.Rule
		if err == nil && len(bytes.TrimSpace(n.IPRule)) > 0 {
			rules, err = route.ParseRules(n.IPRule)
		}
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("ip-route/ip-rule unreadable: %v", err))
		} else {
			st.FIB = route.NewFIB(route.Config{Routes: routes, Rules: rules, Links: st.Links})
			st.DevRoutes = route.DevRoutes(routes)
		}
	}
	if n.PodInterfaces != nil {
		var pis []struct {
			IP      string `json:"ip"`
			IfIndex int    `json:"ifindex"`
			IfLink  int    `json:"iflink"`
		}
		if err := json.Unmarshal(n.PodInterfaces, &pis); err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("pod-interfaces unreadable: %v", err))
		} else {
			st.PodNetns = map[netip.Addr]netdev.PodNetns{}
			for _, pi := range pis {
				if a, err := netip.ParseAddr(pi.IP); err == nil && pi.IfLink > 0 {
					st.PodNetns[a] = netdev.PodNetns{IfLink: netdev.Index(pi.IfLink), IfIndex: netdev.Index(pi.IfIndex)}
				}
			}
		}
	}
	if n.Conntrack != nil {
		ct, err := ctflow.Parse(n.Conntrack, ctflow.ParseOptions{Lenient: true})
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("conntrack unreadable: %v", err))
		} else {
			st.Conntrack = ct
			if ct.Skipped > 0 {
				st.Problems = append(st.Problems, fmt.Sprintf("conntrack: %d malformed line(s) skipped", ct.Skipped))
			}
		}
	}
	st.parseHealth(n)
	if n.Verify != nil {
		st.parseVerify(n.Verify)
	}
	st.HasNFTKubeProxy = bytes.Contains(n.NFTRuleset, []byte("table ip kube-proxy")) ||
		bytes.Contains(n.NFTRuleset, []byte("table ip6 kube-proxy"))
	if len(bytes.TrimSpace(n.NFTRuleset)) > 0 {
		st.parseNFT(n)
	}
	st.HasIPVS = st.hasLink("kube-ipvs0")
	if len(bytes.TrimSpace(n.IPVS)) > 0 {
		st.IPVS, st.IPVSErr = ipvs.Parse(n.IPVS)
	}
	if len(bytes.TrimSpace(n.IPSet)) > 0 {
		sets, err := iptables.ParseIPSets(n.IPSet)
		if err != nil {
			st.Problems = append(st.Problems, "ipset unreadable: "+err.Error())
		} else {
			st.IPSets = sets
		}
	}
	st.HasCilium = st.hasLink("cilium_host")
	st.HasCalicoEBPF = st.hasLink("bpfnatin")
	return st
}

// maxNFTCache bounds the cached translations of a node.
const maxNFTCache = 8

type nftSource struct {
	table *nft.Table
	base  []byte
}

type nftResult struct {
	tr  *nft.Translation
	err error
}

// parseNFT reads the nftables ruleset and keeps kube-proxy's tables (ip
// and ip6 kube-proxy), each with the iptables rules of its family, for
// KubeProxyNFT.
func (n *Node) parseNFT(sn *snapshot.Node) {
	rs, err := nft.Parse(sn.NFTRuleset)
	if err != nil {
		n.NFTErr = err
		return
	}
	n.NFT = rs
	for _, fam := range []struct{ family, table string }{{"IPv4", "ip"}, {"IPv6", "ip6"}} {
		t := rs.Table(fam.table, nft.KubeProxyTable)
		if t == nil {
			continue
		}
		n.HasNFTKubeProxy = true
		base := sn.IPTablesSave
		if fam.family == "IPv6" {
			base = sn.IP6TablesSave
		}
		if d, err, _ := n.Dump(fam.family); d == nil || err != nil {
			base = nil // an unreadable dump is reported on its own
		}
		if n.nftKube == nil {
			n.nftKube = map[string]nftSource{}
		}
		n.nftKube[fam.family] = nftSource{t, base}
	}
}

// KubeProxyNFT returns kube-proxy's nftables table of a family translated
// for the tracer and merged with that family's iptables rules, narrowed to
// focus (nil: whole). It is nil, nil when the node has no such table.
// Translations are cached by focus.
func (n *Node) KubeProxyNFT(family string, focus *nft.Focus) (*nft.Translation, error) {
	src, ok := n.nftKube[family]
	if !ok {
		return nil, nil
	}
	key := family + "|" + focus.Key()
	n.nftMu.Lock()
	defer n.nftMu.Unlock()
	if r, ok := n.nftCache[key]; ok {
		return r.tr, r.err
	}
	tr, err := nft.TranslateFocus(src.table, src.base, focus)
	if n.nftCache == nil || len(n.nftCache) >= maxNFTCache {
		// One service's analysis asks for its focus several times;
		// an audit of every service must not keep them all.
		n.nftCache = map[string]nftResult{}
	}
	n.nftCache[key] = nftResult{tr, err}
	return tr, err
}

// Dump returns the dump of a family ("IPv4" or "IPv6") with its error and
// whether the file was present.
func (n *Node) Dump(family string) (*iptables.Dump, error, bool) {
	if family == "IPv6" {
		return n.IPv6, n.IPv6Err, n.HasIPv6Dump
	}
	return n.IPv4, n.IPv4Err, n.HasIPv4Dump
}

// parseLinks reads ip-link and ip-addr; either may be absent.
func parseLinks(link, addr []byte) (*netdev.Set, error) {
	if link != nil {
		return netdev.Parse(link, addr)
	}
	links, err := netdev.ParseAddrs(addr)
	if err != nil {
		return nil, err
	}
	return netdev.NewSet(links), nil
}

func (n *Node) hasLink(name string) bool {
	_, ok := n.Links.ByName(netdev.Name(name))
	return ok
}

// OutInterface returns the egress interface of dst by the node's routes,
// or "" when unknown; it is the iptables evaluator's -o oracle.
func (n *Node) OutInterface(dst netip.Addr) string {
	if n.FIB == nil {
		return ""
	}
	res, err := n.FIB.Lookup(dst, route.Options{})
	if err != nil {
		return ""
	}
	return string(res.Dev)
}

// Verified is one connection of --verify with the conntrack entry it
// created, parsed (nil when the agent found none or the line is
// unreadable).
type Verified struct {
	agentapi.VerifyResult
	Flow *ctflow.Flow
}

func (n *Node) parseVerify(b []byte) {
	var rs []agentapi.VerifyResult
	if err := json.Unmarshal(b, &rs); err != nil {
		n.Problems = append(n.Problems, fmt.Sprintf("%s unreadable: %v", snapshot.FileVerify, err))
		return
	}
	n.Verify = make([]Verified, 0, len(rs))
	for _, r := range rs {
		v := Verified{VerifyResult: r}
		if r.Conntrack != "" {
			d, err := ctflow.Parse([]byte(r.Conntrack+"\n"), ctflow.ParseOptions{})
			if err == nil && len(d.Flows) == 1 {
				v.Flow = &d.Flows[0]
			} else {
				n.Problems = append(n.Problems, fmt.Sprintf("%s: conntrack line of %s unreadable: %q", snapshot.FileVerify, r.Target.Label, r.Conntrack))
			}
		}
		n.Verify = append(n.Verify, v)
	}
}
