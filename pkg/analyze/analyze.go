// Package analyze is the heart of kubectl-svcpath: a pure function from the
// API objects and a node's collected state to an explained, checked report.
// It does no I/O: node files are parsed by the parser packages (through
// pkg/nodestate) and the API objects indexed by pkg/cluster.
package analyze

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// ErrServiceNotFound is returned (wrapped, with close names suggested) when
// the snapshot has no such Service.
var ErrServiceNotFound = errors.New("service not found")

// ErrNodeNotFound is returned (wrapped) when a requested node has no data
// in the snapshot.
var ErrNodeNotFound = errors.New("node not found in snapshot")

// Options select what to analyse.
type Options struct {
	Namespace, Name string
	// Nodes limits the analysed nodes; empty means every node that has
	// node data in the snapshot.
	Nodes []string
	// From is the --from value: trace a connection from that source.
	From string
}

// Analyze explains and checks the datapath of one Service on the selected
// nodes of a snapshot. Node files are parsed once each, then Explain runs.
func Analyze(snap *snapshot.Snapshot, opts Options) (*report.Report, error) {
	c := cluster.New(snap.Objects)
	if c.Service(opts.Namespace, opts.Name) == nil {
		return nil, notFound(c, opts.Namespace, opts.Name)
	}
	selected, err := selectNodes(snap, opts.Nodes)
	if err != nil {
		return nil, err
	}
	states := make([]*nodestate.Node, 0, len(selected))
	for _, n := range selected {
		states = append(states, nodestate.Parse(n, c.NodeAddresses(n.Name)))
	}
	req := Request{Namespace: opts.Namespace, Name: opts.Name}
	if opts.From != "" {
		src, err := ParseSource(opts.From, opts.Namespace)
		if err != nil {
			return nil, err
		}
		req.From = &src
	}
	rep, err := Explain(c, states, req)
	if err != nil {
		return nil, err
	}
	if snap.Dir != "" {
		rep.Source = "snapshot " + snap.Dir
	}
	return rep, nil
}

func selectNodes(snap *snapshot.Snapshot, want []string) ([]*snapshot.Node, error) {
	if len(want) == 0 {
		return snap.Nodes, nil
	}
	byName := map[string]*snapshot.Node{}
	var names []string
	for _, n := range snap.Nodes {
		byName[n.Name] = n
		names = append(names, n.Name)
	}
	var out []*snapshot.Node
	seen := map[string]bool{}
	for _, w := range want {
		n, ok := byName[w]
		if !ok {
			return nil, fmt.Errorf("%w: %q (nodes with data: %s)", ErrNodeNotFound, w, strings.Join(names, ", "))
		}
		if !seen[w] {
			out = append(out, n)
			seen[w] = true
		}
	}
	return out, nil
}

func notFound(c *cluster.Cluster, ns, name string) error {
	all := c.ServiceNames()
	want := ns + "/" + name
	var close []string
	inNS := 0
	for _, s := range all {
		if strings.HasPrefix(s, ns+"/") {
			inNS++
		}
		sns, sname, _ := strings.Cut(s, "/")
		if sname == name || (sns == ns && editDistance(sname, name) <= 2) || strings.Contains(sname, name) && name != "" {
			close = append(close, s)
		}
	}
	msg := fmt.Sprintf("%s: services %q", ErrServiceNotFound.Error(), want)
	if inNS == 0 {
		msg += fmt.Sprintf(" (namespace %q has no services in this snapshot)", ns)
	}
	if len(close) > 0 {
		if len(close) > 5 {
			close = close[:5]
		}
		msg += "; did you mean " + strings.Join(close, ", ") + "?"
	}
	return &notFoundError{msg: msg}
}

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Unwrap() error { return ErrServiceNotFound }

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Request is what Explain explains.
type Request struct {
	Namespace, Name string
	// From, when set, traces a connection from that source.
	From *Source
	// noDNS skips the cluster DNS check and the node health checks (used
	// when checking the DNS service for another service's report, which
	// already holds the nodes' health findings).
	noDNS bool
}

// Explain is the pure analysis: the indexed API objects and the parsed node
// states in, the report out.
func Explain(c *cluster.Cluster, nodes []*nodestate.Node, req Request) (*report.Report, error) {
	ns, name := req.Namespace, req.Name
	svc := c.Service(ns, name)
	if svc == nil {
		return nil, notFound(c, ns, name)
	}
	ports := c.Ports(svc)
	rep := &report.Report{
		APIVersion: report.APIVersion,
		Kind:       report.Kind,
		Service:    serviceSection(svc, ports),
		Nodes:      []report.Node{},
		Findings:   []report.Finding{},
	}
	a := &analysis{c: c, svc: svc, ports: ports, rep: rep, nodeHealth: !req.noDNS}
	if done := a.serviceLevel(); done {
		a.finish()
		return rep, nil
	}
	var resolved *resolvedSource
	if req.From != nil {
		var names []string
		for _, st := range nodes {
			names = append(names, st.Name)
		}
		rs, err := req.From.resolve(c, names, a.families()[0])
		if err != nil {
			return nil, err
		}
		resolved = &rs
	}
	a.states = map[string]*nodestate.Node{}
	for _, st := range nodes {
		a.states[st.Name] = st
	}
	nas := make([]*nodeAnalysis, 0, len(nodes))
	for _, st := range nodes {
		out, na := a.node(st)
		rep.Nodes = append(rep.Nodes, out)
		nas = append(nas, na)
	}
	for i, na := range nas {
		na.out = &rep.Nodes[i]
		if kubeProxyMode(na.out.Mode) {
			// What the agent's connections and conntrack saw is data in any
			// kube-proxy mode; it is compared with the rules only where
			// they were evaluated (entries exist).
			na.verify()
			if ct := na.conntrack(expectedShares(na.out)); ct != nil {
				rep.Conntrack = append(rep.Conntrack, *ct)
			}
		}
		if !na.rulesEvaluated() {
			continue
		}
		na.checkInterfaces()
		if resolved != nil && resolved.node == na.st.Name {
			tr, err := na.traceFrom(*resolved)
			if err != nil {
				return nil, err
			}
			rep.Trace = tr
		}
	}
	if resolved != nil && rep.Trace == nil {
		// Not an error: the rest of the report (endpoints, conntrack,
		// health, --verify) still answers much of the question.
		for i := range rep.Nodes {
			if n := &rep.Nodes[i]; n.Name == resolved.node {
				n.Notes = append(n.Notes, fmt.Sprintf("--from: the connection from %s is not traced: this node is in %s mode, whose rules are not traced (see the node's notes)", resolved.Source, n.Mode))
			}
		}
	}
	a.afterNodes(nodes)
	a.emitNoReady()
	a.noReadyFromAPI()
	if !req.noDNS {
		a.dns(nodes)
	}
	a.finish()
	rep.Addresses = a.addressLabels(nodes)
	return rep, nil
}

// expectedShares maps each entry ("ip:port") of a node to the share of pod
// connections each destination gets.
func expectedShares(n *report.Node) map[string]map[netip.AddrPort]float64 {
	out := map[string]map[netip.AddrPort]float64{}
	for _, p := range n.Ports {
		for _, e := range p.Entries {
			ip, err := netip.ParseAddr(e.IP)
			if err != nil {
				continue
			}
			key := netip.AddrPortFrom(ip, uint16(e.Port)).String()
			m := map[netip.AddrPort]float64{}
			for _, t := range e.Targets {
				if tip, err := netip.ParseAddr(t.IP); err == nil {
					m[netip.AddrPortFrom(tip, uint16(t.Port))] += t.Probability
				}
			}
			out[key] = m
		}
	}
	return out
}

type analysis struct {
	// nftWhole translates kube-proxy's whole nftables table once (an
	// audit of every service) instead of the service's part.
	nftWhole bool
	c        *cluster.Cluster
	svc      *corev1.Service
	ports    []cluster.Port
	rep      *report.Report
	// serviceFindings are node-independent.
	serviceFindings []report.Finding
	// seen dedupes service-level findings by ID+port.
	seen map[string]bool
	// states are the parsed nodes by name (to look at the node that
	// receives a traced packet).
	states map[string]*nodestate.Node
	// nodeHealth runs the node health checks (health.go).
	nodeHealth bool
	// noReadyPorts gathers, per service port with no usable endpoint, what
	// clients see on each node; emitted as one NO-READY-ENDPOINTS finding.
	noReadyPorts []*noReadyPort
}

type noReadyPort struct {
	port     cluster.Port
	bySees   map[string][]string // what clients see -> nodes
	evidence []string
}

// noReady records what clients of a port with no usable endpoint see on a
// node.
func (a *analysis) noReady(p cluster.Port, node, who, sees string, ev []string) {
	nr := a.noReadyOf(p)
	if nr == nil {
		nr = &noReadyPort{port: p, bySees: map[string][]string{}}
		a.noReadyPorts = append(a.noReadyPorts, nr)
	}
	key := who + " clients " + sees
	for _, n := range nr.bySees[key] {
		if n == node {
			return
		}
	}
	nr.bySees[key] = append(nr.bySees[key], node)
	nr.evidence = append(nr.evidence, ev...)
}

// noReadyOf returns the no-ready record of service port p, nil when no
// node reported one.
func (a *analysis) noReadyOf(p cluster.Port) *noReadyPort {
	for _, x := range a.noReadyPorts {
		if x.port.Name == p.Name && x.port.Protocol == p.Protocol && x.port.ServicePort.Port == p.ServicePort.Port {
			return x
		}
	}
	return nil
}

func (a *analysis) emitNoReady() {
	for _, nr := range a.noReadyPorts {
		var parts []string
		for sees, nodes := range nr.bySees {
			parts = append(parts, fmt.Sprintf("on %s, %s", strings.Join(nodes, ", "), sees))
		}
		sort.Strings(parts)
		a.addService(report.NoReadyEndpoints, nr.port.String(), "",
			fmt.Sprintf("port %s has no ready endpoint: %s", nr.port.String(), strings.Join(parts, "; ")),
			uniq(append(a.endpointEvidence(), nr.evidence...)),
			"check the pods behind the selector and why they are not ready: kubectl get pods -l "+selectorString(a.svc)+"; kubectl describe pod ...")
	}
}

// noReadyFromAPI reports NO-READY-ENDPOINTS from the EndpointSlices alone
// for the ports no node's rules were evaluated for (nodes in a mode this
// version does not evaluate, or no node data at all).
func (a *analysis) noReadyFromAPI() {
	for _, p := range a.ports {
		if len(cluster.UsableEndpoints(p.Endpoints, "", false)) > 0 {
			continue
		}
		if a.noReadyOf(p) != nil {
			continue // the nodes' rules said it already
		}
		a.addService(report.NoReadyEndpoints, p.String(), "",
			fmt.Sprintf("port %s has no ready endpoint in the EndpointSlices: kube-proxy has nothing to send its connections to (it rejects them, or drops them with no rule at all)", p.String()),
			a.endpointEvidence(),
			"check the pods behind the selector and why they are not ready: kubectl get pods -l "+selectorString(a.svc)+"; kubectl describe pod ...")
	}
}

func serviceSection(svc *corev1.Service, ports []cluster.Port) report.Service {
	s := report.Service{
		Namespace:             svc.Namespace,
		Name:                  svc.Name,
		Type:                  string(svc.Spec.Type),
		ExternalName:          svc.Spec.ExternalName,
		ExternalIPs:           svc.Spec.ExternalIPs,
		ExternalTrafficPolicy: string(svc.Spec.ExternalTrafficPolicy),
		SessionAffinity:       string(svc.Spec.SessionAffinity),
	}
	if s.Type == "" {
		s.Type = string(corev1.ServiceTypeClusterIP)
	}
	if svc.Spec.InternalTrafficPolicy != nil {
		s.InternalTrafficPolicy = string(*svc.Spec.InternalTrafficPolicy)
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		s.AffinityTimeoutSeconds = 10800
		if cfg := svc.Spec.SessionAffinityConfig; cfg != nil && cfg.ClientIP != nil && cfg.ClientIP.TimeoutSeconds != nil {
			s.AffinityTimeoutSeconds = *cfg.ClientIP.TimeoutSeconds
		}
	}
	s.ClusterIPs = cluster.ClusterIPs(svc)
	s.Headless = svc.Spec.ClusterIP == corev1.ClusterIPNone
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			s.LoadBalancerIPs = append(s.LoadBalancerIPs, ing.IP)
		}
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, report.ServicePort{
			Name: p.Name, Port: p.ServicePort.Port, Protocol: string(p.Protocol),
			TargetPort: cluster.TargetPortString(p.ServicePort), NodePort: p.NodePort,
		})
		for _, e := range p.Endpoints {
			s.Endpoints = append(s.Endpoints, report.Endpoint{
				PortName: p.Name, IP: e.IP.String(), Port: e.Port, Protocol: string(p.Protocol),
				Ready: e.Ready, Serving: e.Serving, Terminating: e.Terminating,
				Pod: e.Pod, Node: e.Node, Zone: e.Zone,
			})
		}
	}
	return s
}

// serviceLevel emits the findings that do not depend on a node and tells
// whether the service has no proxied datapath at all.
func (a *analysis) serviceLevel() bool {
	svc := a.svc
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		a.rep.Service.Explanation = fmt.Sprintf(
			"%s/%s is an ExternalName service: the cluster DNS answers %s.%s.svc with a CNAME to %q. "+
				"There is no ClusterIP, no endpoint and no proxy rule: kube-proxy ignores it, so there is no datapath to check. "+
				"If clients fail, check DNS resolution of %q from the client pod and the reachability of that name.",
			svc.Namespace, svc.Name, svc.Name, svc.Namespace, svc.Spec.ExternalName, svc.Spec.ExternalName)
		a.addService(report.ServiceExternalName, "", "",
			fmt.Sprintf("ExternalName service: DNS returns a CNAME to %s; no proxy rules exist for it", svc.Spec.ExternalName),
			[]string{"spec.type: ExternalName", "spec.externalName: " + svc.Spec.ExternalName},
			"test with: kubectl exec CLIENT -- nslookup "+svc.Name+"."+svc.Namespace+".svc")
		return true
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		var addrs []string
		for _, p := range a.ports {
			for _, e := range cluster.UsableEndpoints(p.Endpoints, "", false) {
				addrs = append(addrs, e.IP.String())
			}
		}
		addrs = uniqSorted(addrs)
		a.rep.Service.Explanation = fmt.Sprintf(
			"%s/%s is a headless service (clusterIP: None): the cluster DNS answers %s.%s.svc with the ready pod addresses (%s) "+
				"and clients connect to a pod directly. There is no virtual IP and kube-proxy writes no rule for it, "+
				"so there is no NAT to check: the path is the ordinary pod-to-pod path.",
			svc.Namespace, svc.Name, svc.Name, svc.Namespace, orNone(strings.Join(addrs, ", ")))
		a.addService(report.ServiceHeadless, "", "",
			fmt.Sprintf("headless service: DNS returns the %d ready pod address(es), no proxy rules", len(addrs)),
			[]string{"spec.clusterIP: None"}, "")
		if len(addrs) == 0 {
			a.addService(report.NoReadyEndpoints, "", "",
				"headless service with no ready endpoint: DNS returns no address (NXDOMAIN or an empty answer)",
				a.endpointEvidence(), "check the pods behind the selector: kubectl get pods -l "+selectorString(svc))
		}
		return true
	}
	if len(svc.Spec.Selector) == 0 {
		a.addService(report.ServiceNoSelector, "", "",
			"the service has no selector: its EndpointSlices are written by hand or by another controller, not from pods",
			[]string{"spec.selector: (none)"}, "")
	}
	for _, p := range a.ports {
		ready, term := 0, 0
		for _, e := range p.Endpoints {
			if e.Ready {
				ready++
			} else if e.Serving && e.Terminating {
				term++
			}
		}
		if ready == 0 && term > 0 {
			a.addService(report.TerminatingEndpointsOnly, p.String(), "",
				fmt.Sprintf("port %s has no ready endpoint; kube-proxy falls back to its %d serving-but-terminating endpoint(s) until they are gone", p.String(), term),
				a.endpointEvidence(), "scale up or fix readiness before the terminating pods exit")
		}
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		a.addService(report.SessionAffinityClientIP, "", "",
			fmt.Sprintf("sessionAffinity ClientIP: after its first connection, each client address is sent to the same endpoint for %ds (xt_recent lists); the probabilities shown are for a client's first connection",
				a.rep.Service.AffinityTimeoutSeconds),
			[]string{"spec.sessionAffinity: ClientIP"}, "")
	}
	return false
}

func (a *analysis) endpointEvidence() []string {
	var ev []string
	for _, p := range a.ports {
		if len(p.Endpoints) == 0 {
			ev = append(ev, fmt.Sprintf("port %s: no endpoint in any EndpointSlice", p.String()))
		}
		for _, e := range p.Endpoints {
			ev = append(ev, fmt.Sprintf("port %s: %s pod=%s node=%s ready=%t serving=%t terminating=%t",
				p.String(), e.AddrPort(), orNone(e.Pod), orNone(e.Node), e.Ready, e.Serving, e.Terminating))
		}
	}
	return ev
}

func selectorString(svc *corev1.Service) string {
	var parts []string
	for k, v := range svc.Spec.Selector {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (a *analysis) addService(id, port, entry, msg string, ev []string, hint string) {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	key := id + "|" + port + "|" + entry
	if a.seen[key] {
		return
	}
	a.seen[key] = true
	a.serviceFindings = append(a.serviceFindings, newFinding(id, "", port, entry, msg, ev, hint))
}

func newFinding(id, node, port, entry, msg string, ev []string, hint string) report.Finding {
	if ev == nil {
		ev = []string{}
	}
	return report.Finding{
		ID: id, Severity: report.Catalog[id].Severity, Node: node, Port: port, Entry: entry,
		Message: msg, Evidence: ev, Hint: hint,
	}
}

// finish assembles the sorted top-level findings.
func (a *analysis) finish() {
	all := append([]report.Finding{}, a.serviceFindings...)
	for i := range a.rep.Nodes {
		sortFindings(a.rep.Nodes[i].Findings)
		all = append(all, a.rep.Nodes[i].Findings...)
	}
	sortFindings(all)
	a.rep.Findings = all
	sort.SliceStable(a.rep.Nodes, func(i, j int) bool { return a.rep.Nodes[i].Name < a.rep.Nodes[j].Name })
}

func sortFindings(fs []report.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if r1, r2 := fs[i].Severity.Rank(), fs[j].Severity.Rank(); r1 != r2 {
			return r1 < r2
		}
		if fs[i].ID != fs[j].ID {
			return fs[i].ID < fs[j].ID
		}
		if fs[i].Node != fs[j].Node {
			return fs[i].Node < fs[j].Node
		}
		if fs[i].Port != fs[j].Port {
			return fs[i].Port < fs[j].Port
		}
		return fs[i].Entry < fs[j].Entry
	})
}

func uniqSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
