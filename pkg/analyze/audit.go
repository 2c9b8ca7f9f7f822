package analyze

import (
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// An audit runs the analysis of Explain for every service of a cluster,
// one node at a time, keeping nothing of a node once its findings are out
// (`kubectl svcpath audit`, docs/audit.md).
//
// What is the same as Explain: each service port's entries are traced and
// checked on the node exactly as nodeAnalysis.port does it (the same
// code), the node's conntrack flows to the service are checked, and so are
// its endpoints' interfaces. What differs, so that the cost is linear in
// services × nodes and the findings are not repeated:
//
//   - Node-independent findings (SERVICE-NO-SELECTOR, SESSION-AFFINITY-
//     CLIENTIP, TERMINATING-ENDPOINTS-ONLY, NO-READY-ENDPOINTS from the
//     EndpointSlices) are computed once per service, from the API objects.
//     ICMP-NOT-SERVED is checked once per service, on the first node in
//     iptables mode.
//   - The node's own findings (the proxy mode: KUBE-PROXY-ABSENT,
//     NODE-DATA-MISSING, RULES-UNPARSABLE of the dump; its health:
//     PROXY-STALE, CONNTRACK-*, IP-FORWARD-DISABLED,
//     BRIDGE-NF-CALL-DISABLED) are found once per node, with Service "".
//     PROXY-STALE on a healthy answer compares kube-proxy's last sync with
//     the newest change of the audited services' EndpointSlices, and on no
//     answer looks at the stale and missing endpoints of every service.
//   - DNS-PATH-BROKEN is not raised: the cluster DNS service is audited as
//     a service of its own. --verify results are not read.
//   - Service ports and their endpoints are merged once per audit; each
//     node is analysed with an index of the API objects whose pod list
//     holds that node's pods (plus, per address family, the first pod of
//     the cluster, the fallback client of the single-service analysis):
//     the pod client chosen is the one Explain chooses, without scanning
//     every pod of the cluster for every service. An address that is no
//     endpoint and belongs to a pod of another node is then described as
//     an unknown address in FLOW-UNREPLIED and CONNTRACK-STALE-ENDPOINT.

// Audit analyses the services of one set of API objects on any number of
// nodes. It is safe for concurrent use: Node may run on several nodes at
// once.
type Audit struct {
	objs     snapshot.Objects
	full     *cluster.Cluster
	services []*auditService
	// podsOf holds, per node, the positions in objs.Pods of its pods;
	// firstPods the positions of the first pod of each address family.
	podsOf    map[string][]int
	firstPods []int
	// Workers is how many services of a node are analysed at once (0:
	// GOMAXPROCS). Set it before the first call of Node.
	Workers int
	// healthSvc stands for the audited services in the node health
	// checks: the one whose EndpointSlices changed last, with one
	// ClusterIP of each family the services use.
	healthSvc *corev1.Service
}

type auditService struct {
	svc   *corev1.Service
	key   string
	ports []cluster.Port
	// skipped says why the service is not analysed on nodes.
	skipped string
	// findings are the node-independent ones.
	findings []report.Finding
	// icmpChecked is set once a node in iptables mode checked
	// ICMP-NOT-SERVED for the service.
	icmpChecked atomic.Bool
}

// AuditService is one audited service and its node-independent findings.
type AuditService struct {
	Namespace, Name string
	// Skipped says why the service is not analysed on the nodes
	// (headless, ExternalName): the audit lists it with this note.
	Skipped string
	// Findings are the service's findings that no node changes (Node "").
	Findings []report.Finding
}

// AuditFinding is a finding of the audit: a report.Finding with the
// service it is about ("namespace/name"), "" for a finding about the node
// itself.
type AuditFinding struct {
	Service string `json:"service,omitempty"`
	report.Finding
}

// NodeAudit is the analysis of every audited service on one node.
type NodeAudit struct {
	Node string
	// Mode is the node's proxy datapath (iptables, nftables, ...).
	Mode string
	// Notes are the node's notes, each once.
	Notes []string
	// Findings are the node's own findings (Service "") and the service
	// findings on this node; a finding with Node "" is a service-level
	// finding found on this node (ICMP-NOT-SERVED).
	Findings []AuditFinding
	// Services is how many services were analysed on the node.
	Services int
}

// maxAuditNotes caps the notes kept per node.
const maxAuditNotes = 20

// NewAudit prepares the audit of services (nil: every Service of objs)
// against the API objects objs. It indexes the objects once: the ports
// and endpoints of each service, the pods of each node.
func NewAudit(objs snapshot.Objects, services []*corev1.Service) *Audit {
	if services == nil {
		services = objs.Services
	}
	a := &Audit{objs: objs, full: cluster.New(objs), podsOf: map[string][]int{}}

	// Pods: by node, by address, and the first of each family.
	byIP := map[netip.Addr][]int{}
	seenFam := map[string]bool{}
	for i, p := range objs.Pods {
		if p.Spec.NodeName != "" {
			a.podsOf[p.Spec.NodeName] = append(a.podsOf[p.Spec.NodeName], i)
		}
		if p.Spec.HostNetwork {
			continue
		}
		for _, ip := range podAddrs(p) {
			byIP[ip] = append(byIP[ip], i)
		}
		if ad, err := netip.ParseAddr(p.Status.PodIP); err == nil && !seenFam[familyOf(ad)] {
			seenFam[familyOf(ad)] = true
			a.firstPods = append(a.firstPods, i)
		}
	}
	slicesOf := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range objs.EndpointSlices {
		k := sl.Namespace + "/" + sl.Labels[cluster.LabelServiceName]
		slicesOf[k] = append(slicesOf[k], sl)
	}

	var newest time.Time
	fams := map[string]string{}
	for _, svc := range services {
		s := &auditService{svc: svc, key: svc.Namespace + "/" + svc.Name}
		a.services = append(a.services, s)
		s.ports = a.portsOf(svc, slicesOf[s.key], byIP)
		an := &analysis{c: a.full, svc: svc, ports: s.ports, rep: &report.Report{}}
		if an.serviceLevel() {
			s.skipped = skipReason(svc)
			continue
		}
		an.noReadyFromAPI()
		s.findings = an.serviceFindings
		sortFindings(s.findings)
		for _, ip := range cluster.ClusterIPs(svc) {
			if ad, err := netip.ParseAddr(ip); err == nil && fams[familyOf(ad)] == "" {
				fams[familyOf(ad)] = ad.String()
			}
		}
		for _, sl := range slicesOf[s.key] {
			if t, _ := sliceChange(sl); t.After(newest) || a.healthSvc == nil {
				newest, a.healthSvc = t, svc
			}
		}
	}
	// The stand-in of the node health checks: the service whose slices
	// changed last (PROXY-STALE), with a ClusterIP of each family in use
	// (IP-FORWARD-DISABLED, BRIDGE-NF-CALL-DISABLED).
	hs := &corev1.Service{}
	if a.healthSvc != nil {
		hs = a.healthSvc.DeepCopy()
	}
	hs.Spec.ClusterIPs = nil
	for _, fam := range []string{"IPv4", "IPv6"} {
		if ip := fams[fam]; ip != "" {
			hs.Spec.ClusterIPs = append(hs.Spec.ClusterIPs, ip)
		}
	}
	if len(hs.Spec.ClusterIPs) > 0 {
		hs.Spec.ClusterIP = hs.Spec.ClusterIPs[0]
	}
	a.healthSvc = hs
	return a
}

// portsOf merges the service's ports and endpoints as cluster.Ports does,
// from an index of only its slices and of the pods that hold their
// addresses (in their order in the objects, so that the same pod wins an
// address): the same result without scanning every slice per service.
func (a *Audit) portsOf(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, byIP map[netip.Addr][]int) []cluster.Port {
	var idx []int
	seen := map[int]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			for _, s := range ep.Addresses {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					continue
				}
				for _, i := range byIP[ip] {
					if !seen[i] {
						seen[i] = true
						idx = append(idx, i)
					}
				}
			}
		}
	}
	sort.Ints(idx)
	pods := make([]*corev1.Pod, len(idx))
	for j, i := range idx {
		pods[j] = a.objs.Pods[i]
	}
	return cluster.New(snapshot.Objects{Services: []*corev1.Service{svc}, EndpointSlices: slices, Pods: pods}).Ports(svc)
}

// skipReason says why a service has no datapath on the nodes.
func skipReason(svc *corev1.Service) string {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return fmt.Sprintf("ExternalName service (a DNS CNAME to %s): kube-proxy writes no rule for it", svc.Spec.ExternalName)
	}
	return "headless service (clusterIP: None): DNS returns the pod addresses, kube-proxy writes no rule for it"
}

// podAddrs are the addresses cluster.New indexes a pod by.
func podAddrs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a)
		}
	}
	if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
		out = append(out, a)
	}
	return out
}

func (a *Audit) workers() int {
	if a.Workers > 0 {
		return a.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// Services lists the audited services, in the order given, with their
// node-independent findings.
func (a *Audit) Services() []AuditService {
	out := make([]AuditService, 0, len(a.services))
	for _, s := range a.services {
		out = append(out, AuditService{Namespace: s.svc.Namespace, Name: s.svc.Name, Skipped: s.skipped, Findings: s.findings})
	}
	return out
}

// nodeCluster indexes the API objects for the analysis of one node: every
// object, but of the pods only the node's own and the first pod of each
// family, in their order in the objects (see the package comment above).
func (a *Audit) nodeCluster(node string) *cluster.Cluster {
	idx := append(append([]int(nil), a.podsOf[node]...), a.firstPods...)
	sort.Ints(idx)
	pods := make([]*corev1.Pod, 0, len(idx))
	for j, i := range idx {
		if j > 0 && idx[j-1] == i {
			continue
		}
		pods = append(pods, a.objs.Pods[i])
	}
	objs := a.objs
	objs.Pods = pods
	return cluster.New(objs)
}

// Node parses one node's data and analyses every audited service on it.
// Nothing of the node is kept by a once Node returns.
func (a *Audit) Node(n *snapshot.Node) *NodeAudit {
	nc := a.nodeCluster(n.Name)
	st := nodestate.Parse(n, nc.NodeAddresses(n.Name))
	res := &NodeAudit{Node: n.Name}
	notes := newNoteSet()

	// The node itself: its mode (and the findings that go with it).
	han := &analysis{c: a.full, svc: a.healthSvc, rep: &report.Report{}}
	hout, hna := han.node(st)
	hna.out = &hout
	res.Mode = hout.Mode
	nodeLevel := map[string]bool{}
	for _, f := range hout.Findings {
		nodeLevel[f.ID+"|"+f.Port+"|"+f.Entry] = true
		res.Findings = append(res.Findings, AuditFinding{Finding: f})
	}
	notes.add(hout.Notes...)

	// Every service, on Workers goroutines sharing the parsed node. The
	// node state is read-only meanwhile: its conntrack flows are checked
	// after, one service at a time (see serviceOnNode), and --verify's
	// connections, made for one service, are not read.
	disagree := map[string]bool{}
	if kubeProxyMode(res.Mode) {
		flows, ct := indexFlows(st.Conntrack), st.Conntrack
		st.Conntrack, st.Verify = nil, nil
		results := make([]serviceResult, len(a.services))
		next := atomic.Int64{}
		var wg sync.WaitGroup
		for range a.workers() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(a.services) {
						return
					}
					if s := a.services[i]; s.skipped == "" {
						results[i] = a.serviceOnNode(s, nc, st, flows)
					}
				}
			}()
		}
		wg.Wait()
		for i, s := range a.services {
			if s.skipped != "" {
				continue
			}
			r := &results[i]
			if len(r.flows) > 0 {
				// The service's conntrack flows, with the analysis that
				// knows its entries and expected shares.
				st.Conntrack = selectFlows(ct, r.flows)
				r.na.conntrack(expectedShares(r.na.out))
				st.Conntrack = nil
			}
			res.Services++
			notes.add(r.rep.Nodes[0].Notes...)
			for _, f := range r.rep.Nodes[0].Findings {
				if f.Node != "" && f.Port == "" && f.Entry == "" && nodeLevel[f.ID+"||"] {
					continue // the node's own finding, repeated by each service
				}
				switch f.ID {
				case report.EndpointStale, report.EndpointMissing:
					disagree[f.ID] = true
				}
				res.Findings = append(res.Findings, AuditFinding{Service: s.key, Finding: f})
			}
			results[i] = serviceResult{}
		}
		st.Conntrack = ct
	}

	// The node's health, judged with what its rules got wrong.
	hout.Findings = hout.Findings[:0]
	for _, id := range []string{report.EndpointStale, report.EndpointMissing} {
		if disagree[id] {
			hout.Findings = append(hout.Findings, report.Finding{ID: id})
		}
	}
	pre, preNotes := len(hout.Findings), len(hout.Notes)
	hna.checkHealth()
	for _, f := range hout.Findings[pre:] {
		res.Findings = append(res.Findings, AuditFinding{Finding: f})
	}
	notes.add(hout.Notes[preNotes:]...)
	res.Notes = notes.list()
	return res
}

// serviceResult is one service's analysis on a node: the report holding
// its findings and notes, and, when conntrack saw flows to its entries,
// the positions of those flows and the analysis that checks them.
type serviceResult struct {
	rep   *report.Report
	na    *nodeAnalysis
	flows []int
}

// serviceOnNode analyses one service on one node as Explain does (see the
// comment at the top for what an audit leaves out), but for the node's
// conntrack flows: it returns the flows to the service's entries, which
// Node checks after, when no other service is being analysed (the check
// reads them from the node state).
func (a *Audit) serviceOnNode(s *auditService, nc *cluster.Cluster, st *nodestate.Node, flows map[netip.AddrPort][]int) serviceResult {
	rep := &report.Report{Nodes: make([]report.Node, 0, 1)}
	an := &analysis{c: nc, svc: s.svc, ports: s.ports, rep: rep, nftWhole: true}
	an.states = map[string]*nodestate.Node{st.Name: st}
	out, na := an.node(st)
	rep.Nodes = append(rep.Nodes, out)
	na.out = &rep.Nodes[0]
	res := serviceResult{rep: rep}
	if kubeProxyMode(na.out.Mode) && len(flows) > 0 {
		// The entries the conntrack check looks flows up by (conntrack.go).
		for _, p := range an.ports {
			for _, fam := range an.families() {
				for _, e := range na.entries(p, fam) {
					res.flows = append(res.flows, flows[e.addr]...)
				}
			}
		}
		if len(res.flows) > 0 {
			res.na = na
		}
	}
	if na.rulesEvaluated() {
		na.checkInterfaces()
		if s.icmpChecked.CompareAndSwap(false, true) {
			an.afterNodes([]*nodestate.Node{st})
			for _, f := range an.serviceFindings {
				if f.ID == report.ICMPNotServed {
					rep.Nodes[0].Findings = append(rep.Nodes[0].Findings, f)
				}
			}
		}
	}
	return res
}

// selectFlows is the part of a conntrack table at the given positions, in
// table order.
func selectFlows(d *ctflow.Dump, idx []int) *ctflow.Dump {
	sort.Ints(idx)
	out := &ctflow.Dump{Flows: make([]ctflow.Flow, 0, len(idx))}
	for i, j := range idx {
		if i > 0 && idx[i-1] == j {
			continue
		}
		out.Flows = append(out.Flows, d.Flows[j])
	}
	return out
}

// indexFlows groups a conntrack table's flows by original destination.
func indexFlows(ct *ctflow.Dump) map[netip.AddrPort][]int {
	if ct == nil {
		return nil
	}
	out := map[netip.AddrPort][]int{}
	for i := range ct.Flows {
		f := &ct.Flows[i]
		if f.Orig.HasPorts {
			ap := netip.AddrPortFrom(f.Orig.Dst, f.Orig.DPort)
			out[ap] = append(out[ap], i)
		}
	}
	return out
}

// noteSet keeps a node's notes once each, at most maxAuditNotes.
type noteSet struct {
	seen    map[string]bool
	list_   []string
	dropped int
}

func newNoteSet() *noteSet { return &noteSet{seen: map[string]bool{}} }

func (s *noteSet) add(notes ...string) {
	for _, n := range notes {
		if s.seen[n] {
			continue
		}
		s.seen[n] = true
		if len(s.list_) >= maxAuditNotes {
			s.dropped++
			continue
		}
		s.list_ = append(s.list_, n)
	}
}

func (s *noteSet) list() []string {
	if s.dropped > 0 {
		return append(s.list_, fmt.Sprintf("... and %d more note(s)", s.dropped))
	}
	return s.list_
}
