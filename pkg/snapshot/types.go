// Package snapshot reads and writes the snapshot directory: the offline
// input of kubectl-svcpath, documented in docs/snapshot.md. A snapshot holds
// the API objects (objects.yaml) and, per node, the raw output of standard
// commands (nodes/<node>/iptables-save, ip-route, ...). It does not parse the
// node files: that is the parsers' job.
package snapshot

import (
	"sort"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// File names inside nodes/<node>/, each the raw output of the command it is
// named after.
const (
	FileObjects       = "objects.yaml"
	DirNodes          = "nodes"
	FileIPTablesSave  = "iptables-save"    // iptables-save [-c]
	FileIP6TablesSave = "ip6tables-save"   // ip6tables-save [-c]
	FileIPRoute       = "ip-route"         // ip -j route show table all
	FileIPRule        = "ip-rule"          // ip -j rule
	FileIPLink        = "ip-link"          // ip -j -d link
	FileIPAddr        = "ip-addr"          // ip -j addr
	FileConntrack     = "conntrack"        // conntrack -L
	FileSysctl        = "sysctl"           // sysctl -a
	FileNFTRuleset    = "nft-list-ruleset" // nft list ruleset
	FileIPSet         = "ipset"            // ipset save
	// FilePodInterfaces is JSON, one object per pod network namespace of
	// the node: [{"ip": "10.244.1.10", "ifindex": 2, "iflink": 7}], where
	// ifindex and iflink are /sys/class/net/eth0/{ifindex,iflink} inside
	// the pod (iflink is the ifindex of the pod's host-side veth).
	FilePodInterfaces = "pod-interfaces"
	FileMeta          = "meta.json" // written by the live probe

	// Files the live agent writes (JSON unless said otherwise; their
	// schemas are in pkg/agentapi).
	FileConntrackStats = agentapi.FileConntrackStats // conntrack -S and the table's count/max
	FileProxyHealth    = agentapi.FileProxyHealth    // kube-proxy's /healthz answer
	FileVerify         = agentapi.FileVerify         // --verify: the connections made
	FileIPVS           = agentapi.FileIPVS           // ipvsadm -Ln
)

// Snapshot is a loaded snapshot directory.
type Snapshot struct {
	// Dir is where it was loaded from (empty when built in memory).
	Dir     string
	Objects Objects
	// Nodes are sorted by name.
	Nodes []*Node
}

// Objects are the API objects of objects.yaml, by kind. Unknown kinds are
// ignored.
type Objects struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	Nodes          []*corev1.Node
	// ConfigMaps holds ConfigMaps, e.g. kube-system/kube-proxy.
	ConfigMaps []*corev1.ConfigMap
}

// Node is the collected state of one node. A nil slice means the file was
// absent; analysis then says less, it never fails.
type Node struct {
	Name          string
	IPTablesSave  []byte
	IP6TablesSave []byte
	IPRoute       []byte
	IPRule        []byte
	IPLink        []byte
	IPAddr        []byte
	Conntrack     []byte
	Sysctl        []byte
	NFTRuleset    []byte
	// IPSet is the output of ipset save: the members of the sets that
	// iptables rules match with -m set (Calico's cali40* sets, kube-proxy's
	// IPVS-mode KUBE-* sets).
	IPSet []byte
	// PodInterfaces is the pod-interfaces file (see FilePodInterfaces).
	PodInterfaces []byte
	// ConntrackStats, ProxyHealth, Verify and IPVS are the agent's files
	// of the same names (see the File* constants).
	ConntrackStats []byte
	ProxyHealth    []byte
	Verify         []byte
	IPVS           []byte
	Meta           *Meta
}

// Meta is nodes/<node>/meta.json: how the node data was collected.
type Meta struct {
	// Partial is true when only the chains relevant to one service were
	// collected: chains absent from the dump are then not called missing.
	Partial bool `json:"partial,omitempty"`
	// IPTablesBackend is "legacy" or "nft".
	IPTablesBackend string `json:"iptablesBackend,omitempty"`
	// IPTablesBinaries is "image" (the agent's own iptables) or "host"
	// (the host's, through a chroot).
	IPTablesBinaries string `json:"iptablesBinaries,omitempty"`
	CollectedAt      string `json:"collectedAt,omitempty"`
	AgentVersion     string `json:"agentVersion,omitempty"`
	// DurationMillis is how long the agent took to collect.
	DurationMillis int64 `json:"durationMillis,omitempty"`
	// Errors are the agent's collectors that failed ("conntrack: ...").
	Errors []string `json:"errors,omitempty"`
}

// NodeFromDocument turns the agent's document into a node of the
// snapshot: its files by name, and meta.json from its header. Files of
// names this version does not know are returned by name (a newer agent),
// not dropped silently.
func NodeFromDocument(name string, doc *agentapi.Document) (n *Node, unknown []string) {
	n = &Node{Name: name}
	byName := map[string]*[]byte{}
	for _, f := range nodeFiles {
		byName[f.name] = f.field(n)
	}
	for file, content := range doc.Files {
		p, ok := byName[file]
		if !ok {
			unknown = append(unknown, file)
			continue
		}
		*p = []byte(content)
	}
	sort.Strings(unknown)
	n.Meta = &Meta{
		Partial:          doc.Partial,
		IPTablesBackend:  doc.IPTablesBackend,
		IPTablesBinaries: doc.IPTablesBinaries,
		CollectedAt:      doc.CollectedAt,
		AgentVersion:     doc.AgentVersion,
		DurationMillis:   doc.DurationMillis,
	}
	for _, e := range doc.Errors {
		n.Meta.Errors = append(n.Meta.Errors, e.What+": "+e.Error)
	}
	return n, unknown
}

// FileNames are the node file names this version reads, in the order Save
// writes them (meta.json apart).
func FileNames() []string {
	out := make([]string, len(nodeFiles))
	for i, f := range nodeFiles {
		out[i] = f.name
	}
	return out
}
