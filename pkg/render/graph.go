package render

import (
	"fmt"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// graph is the explained path as a directed graph: the common model of
// -o dot and -o mermaid, built from the report alone. A path reads
// source -> entry rule -> service chain -> endpoint chains (with their
// probabilities) -> route or tunnel -> pod.
type graph struct {
	title    string
	clusters []*graphCluster
	// nodes outside any cluster, in order.
	nodes []*graphNode
	edges []graphEdge

	byKey    map[string]*graphNode
	edgeSeen map[string]bool
	clusterB map[string]*graphCluster
}

// graphCluster groups the nodes of one Kubernetes node.
type graphCluster struct {
	id, label string
	nodes     []*graphNode
}

type nodeKind int

const (
	kindSource nodeKind = iota
	kindEntry
	kindChain
	kindEndpoint // an endpoint chain, where the DNAT happens
	kindRoute
	kindPod
	kindBad // dropped, rejected, stale or no rule
	kindNote
)

// graphNode is one box. lines are plain text (the writers escape them);
// the first line is the box's title.
type graphNode struct {
	id    string
	kind  nodeKind
	lines []string
}

type edgeKind int

const (
	edgeNormal edgeKind = iota
	edgeAlt             // another client's path (off-cluster clients)
	edgeBad             // towards a drop, a reject or a stale destination
)

type graphEdge struct {
	from, to string
	label    string
	kind     edgeKind
}

func newGraph(title string) *graph {
	return &graph{title: title, byKey: map[string]*graphNode{}, edgeSeen: map[string]bool{}, clusterB: map[string]*graphCluster{}}
}

// cluster returns the cluster of a Kubernetes node, created on first use;
// nil for "" (outside any cluster).
func (g *graph) cluster(name, label string) *graphCluster {
	if name == "" {
		return nil
	}
	if c := g.clusterB[name]; c != nil {
		return c
	}
	c := &graphCluster{id: fmt.Sprintf("cluster_%d", len(g.clusters)+1), label: label}
	g.clusters = append(g.clusters, c)
	g.clusterB[name] = c
	return c
}

// node returns the node of key, created in cluster c (nil: top level) on
// first use. IDs are n1, n2, ... in creation order, so output is stable.
func (g *graph) node(c *graphCluster, key string, kind nodeKind, lines ...string) *graphNode {
	if n := g.byKey[key]; n != nil {
		return n
	}
	n := &graphNode{id: fmt.Sprintf("n%d", len(g.byKey)+1), kind: kind, lines: lines}
	g.byKey[key] = n
	if c != nil {
		c.nodes = append(c.nodes, n)
	} else {
		g.nodes = append(g.nodes, n)
	}
	return n
}

// edge adds an edge once: the same from, to and label are drawn once.
func (g *graph) edge(from, to *graphNode, label string, kind edgeKind) {
	if from == nil || to == nil {
		return
	}
	key := from.id + "\x00" + to.id + "\x00" + label
	if g.edgeSeen[key] {
		return
	}
	g.edgeSeen[key] = true
	g.edges = append(g.edges, graphEdge{from: from.id, to: to.id, label: label, kind: kind})
}

// buildGraph turns a report into the graph: with a trace (--from), the
// traced connection; else, per node, each entry point's path for a pod
// client of that node (and, where they differ, for off-cluster clients).
func buildGraph(r *report.Report) *graph {
	svc := nsName(r.Service.Namespace, r.Service.Name)
	title := "Service " + svc
	if len(r.Service.ClusterIPs) > 0 {
		title += " (" + strings.Join(r.Service.ClusterIPs, ", ") + ")"
	}
	if r.Trace != nil {
		title += " · from " + traceSourceText(r.Trace)
	}
	g := newGraph(title)
	switch {
	case r.Trace != nil:
		g.trace(r.Trace)
	case len(r.Nodes) > 0:
		nodes := append([]report.Node(nil), r.Nodes...)
		sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
		for i := range nodes {
			g.reportNode(&nodes[i])
		}
	}
	if len(g.byKey) == 0 {
		note := r.Service.Explanation
		if note == "" {
			note = "no node was analysed"
		}
		g.node(nil, "note", kindNote, "Service "+svc, note)
	}
	return g
}

// reportNode draws every entry point of one node.
func (g *graph) reportNode(n *report.Node) {
	label := "node " + n.Name
	if n.Mode != "" {
		label += " · " + n.Mode
	}
	c := g.cluster(n.Name, label)
	pfx := "node/" + n.Name + "/"
	src := g.node(c, pfx+"src", kindSource, "a pod on "+n.Name)
	if len(n.Ports) == 0 {
		g.edge(src, g.node(c, pfx+"noports", kindNote, "no service port explained on this node"), "", edgeNormal)
	}
	for _, p := range n.Ports {
		for i := range p.Entries {
			g.entry(c, pfx, src, &p, &p.Entries[i])
		}
	}
}

// entry draws one entry point: the rule that leads into the service's
// load-balancing chain, that chain, each endpoint chain with its share,
// and the pod it DNATs to.
func (g *graph) entry(c *graphCluster, pfx string, src *graphNode, p *report.Port, e *report.Entry) {
	sp := splitPath(e.Steps)
	title := fmt.Sprintf("%s %s/%s", e.Kind, hostPort(e.IP, e.Port), p.Protocol)
	lines := []string{title}
	if sp.entry != nil {
		lines = append(lines, tableChain(sp.entry.Table, sp.entry.Chain), sp.entry.Rule)
	}
	entryKind := kindEntry
	if len(e.Steps) == 0 {
		entryKind = kindBad
		lines = append(lines, "no rule on the path")
	}
	// When every connection of this entry is masqueraded (a NodePort in
	// the old layout, masqueradeAll), say it once, on the way in.
	masq := ""
	if allMasqueraded(e.Targets) {
		masq = "masquerade (SNAT)"
	}
	en := g.node(c, pfx+"entry/"+title, entryKind, lines...)
	lb := en
	if sp.service != "" {
		g.edge(src, en, "", edgeNormal)
		lb = g.node(c, pfx+"chain/"+sp.service, kindChain, sp.service, sp.serviceTable)
		g.edge(en, lb, masq, edgeNormal)
	} else {
		g.edge(src, en, masq, edgeNormal)
	}
	g.targets(c, pfx, lb, e.Targets, e.DropProbability, e.RejectProbability, sp, edgeNormal)
	if len(e.Targets) == 0 && e.DropProbability == 0 && e.RejectProbability == 0 && len(e.Steps) > 0 {
		g.edge(lb, g.node(c, pfx+"nodnat", kindBad, "no DNAT", "connections are not sent to any endpoint here"), "", edgeBad)
	}
	// A client outside the pod network (the node itself, a host-network
	// pod, an external client): masqueraded when kube-proxy says so, and
	// sent elsewhere when its endpoints differ (externalTrafficPolicy).
	same := sameDestinations(e)
	if !same || e.Masquerade.OffCluster {
		off := g.node(c, pfx+"offcluster", kindSource, "a client outside the pod network", "(the node, host-network pods, external clients)")
		label := ""
		if e.Masquerade.OffCluster {
			label = "masquerade (SNAT)"
		}
		g.edge(off, en, label, edgeAlt)
		if !same {
			g.targets(c, pfx, en, e.OffClusterTargets, e.OffClusterDropProbability, e.OffClusterRejectProbability, sp, edgeAlt)
		}
	}
}

// targets draws the endpoint chains and pods of one entry, from lb (the
// service chain, or the entry when there is none).
func (g *graph) targets(c *graphCluster, pfx string, lb *graphNode, ts []report.Target, drop, reject float64, sp pathSplit, kind edgeKind) {
	for _, t := range ts {
		dest := hostPort(t.IP, t.Port)
		ep := g.node(c, pfx+"ep/"+t.Chain+"/"+dest, kindEndpoint, endpointLines(t.Chain, sp.dnatTable(t.Chain), dest)...)
		g.edge(lb, ep, percent(t.Probability), kind)

		podLines, podKind := []string{dest}, kindPod
		switch {
		case !t.Endpoint:
			podKind = kindBad
			podLines = append(podLines, "not a current endpoint")
			if t.Pod != "" {
				podLines = append(podLines, "(pod "+t.Pod+")")
			}
		case t.Pod != "":
			podLines = []string{"pod " + t.Pod, dest}
		}
		// A pod is drawn once, in the cluster of its own node: the paths
		// of every node meet there.
		pc, key := c, pfx+"pod/"+dest
		if t.Node != "" && t.Endpoint {
			pc, key = g.cluster(t.Node, "node "+t.Node), "pod/"+dest
		}
		label, ek := "", kind
		if t.Masquerade && !allMasqueraded(ts) {
			label = "masquerade (SNAT)"
		}
		if !t.Endpoint {
			ek = edgeBad
		}
		g.edge(ep, g.node(pc, key, podKind, podLines...), label, ek)
	}
	// The steps are a pod's path: they quote the rule of a pod's drop, not
	// of an off-cluster client's.
	verdict := func(what, action string) *graphNode {
		if kind == edgeAlt {
			return g.node(c, pfx+action+"/offcluster", kindBad, what+" (off-cluster clients)")
		}
		return g.node(c, pfx+action, kindBad, append([]string{what}, sp.ruleOf(action)...)...)
	}
	if drop > 0 {
		g.edge(lb, verdict("dropped", "drop"), percent(drop), edgeBad)
	}
	if reject > 0 {
		g.edge(lb, verdict("rejected", "reject"), percent(reject), edgeBad)
	}
}

// allMasqueraded reports whether every target is source-NATed.
func allMasqueraded(ts []report.Target) bool {
	for _, t := range ts {
		if !t.Masquerade {
			return false
		}
	}
	return len(ts) > 0
}

// sameDestinations reports whether off-cluster clients are sent where pod
// clients are, with the same shares (source NAT aside).
func sameDestinations(e *report.Entry) bool {
	if !near(e.DropProbability, e.OffClusterDropProbability) || !near(e.RejectProbability, e.OffClusterRejectProbability) ||
		len(e.Targets) != len(e.OffClusterTargets) {
		return false
	}
	for i := range e.Targets {
		a, b := e.Targets[i], e.OffClusterTargets[i]
		if a.IP != b.IP || a.Port != b.Port || a.Chain != b.Chain || !near(a.Probability, b.Probability) {
			return false
		}
	}
	return true
}

func endpointLines(chain, table, dest string) []string {
	if chain == "" {
		return []string{"DNAT → " + dest}
	}
	return []string{chain, tableChainPrefix(table) + "DNAT → " + dest}
}

func tableChainPrefix(table string) string {
	if table == "" {
		return ""
	}
	return table + ": "
}

// trace draws the traced connection (--from): its source, the entry rule,
// the service chain, and per branch the endpoint chain, the source NAT,
// the route or tunnel out and who receives it.
func (g *graph) trace(tr *report.Trace) {
	home := g.cluster(tr.Node, "node "+tr.Node)
	var srcCluster *graphCluster
	if tr.Source.Kind == sourcePod || tr.Source.Kind == sourceNode {
		srcCluster = home
	}
	srcLines := []string{traceSourceText(tr)}
	if tr.Source.Interface != "" {
		in := "enters by " + tr.Source.Interface
		if tr.Source.Bridge != "" {
			in += " on bridge " + tr.Source.Bridge
		}
		srcLines = append(srcLines, in)
	}
	src := g.node(srcCluster, "src", kindSource, srcLines...)
	entryTitle := tr.Entry
	if tr.Protocol != "" {
		entryTitle += "/" + tr.Protocol
	}
	if len(tr.Branches) == 0 {
		g.edge(src, g.node(home, "none", kindBad, entryTitle, "no outcome: the trace found no path for the connection"), tr.Hook, edgeBad)
		return
	}
	for i := range tr.Branches {
		b := &tr.Branches[i]
		steps := append(append([]report.Step(nil), tr.Steps...), b.Steps...)
		sp := splitPath(steps)
		lines := []string{entryTitle}
		if sp.entry != nil {
			lines = append(lines, tableChain(sp.entry.Table, sp.entry.Chain), sp.entry.Rule)
		}
		en := g.node(home, "entry", kindEntry, lines...)
		g.edge(src, en, tr.Hook, edgeNormal)
		lb := en
		if sp.service != "" {
			lb = g.node(home, "chain/"+sp.service, kindChain, sp.service, sp.serviceTable)
			g.edge(en, lb, "", edgeNormal)
		}
		share := percent(b.Probability)
		if !isAccept(b.Verdict) {
			what := "dropped"
			if strings.EqualFold(b.Verdict, verdictReject) {
				what = "rejected"
			}
			last := []string{what}
			if n := len(steps); n > 0 {
				last = append(last, tableChain(steps[n-1].Table, steps[n-1].Chain), steps[n-1].Rule)
			}
			g.edge(lb, g.node(home, fmt.Sprintf("verdict/%d", i), kindBad, last...), share, edgeBad)
			continue
		}
		from := lb
		if b.DNAT != nil {
			dest := hostPort(b.DNAT.IP, b.DNAT.Port)
			from = g.node(home, "ep/"+sp.endpoint+"/"+dest, kindEndpoint, endpointLines(sp.endpoint, sp.endpointTable, dest)...)
			g.edge(lb, from, share, edgeNormal)
			share = ""
		} else {
			nd := g.node(home, fmt.Sprintf("nodnat/%d", i), kindBad, "not DNATed", "the destination stays the service address")
			g.edge(lb, nd, share, edgeBad)
			from, share = nd, ""
		}
		snat := "no SNAT"
		if b.SNAT != nil {
			snat = "SNAT → " + orQuestion(b.SNAT.IP)
			if b.SNAT.By != "" {
				snat += " (" + b.SNAT.By + ")"
			}
		}
		if b.Egress != nil {
			rt := g.node(home, "route/"+egressKey(b.Egress), kindRoute, egressLines(b.Egress)...)
			g.edge(from, rt, snat, edgeNormal)
			from, snat = rt, ""
		}
		podCluster := home
		if b.DeliveredTo != nil && b.DeliveredTo.Node != "" && b.DeliveredTo.Node != tr.Node {
			podCluster = g.cluster(b.DeliveredTo.Node, "node "+b.DeliveredTo.Node)
		}
		var who []string
		switch {
		case b.DeliveredTo != nil && deliveryWho(b.DeliveredTo) != "":
			who = []string{deliveryWho(b.DeliveredTo)}
			if b.DNAT != nil {
				who = append(who, hostPort(b.DNAT.IP, b.DNAT.Port))
			}
			if b.DeliveredTo.Interface != "" {
				who = append(who, "by "+b.DeliveredTo.Interface)
			}
		case b.DNAT != nil:
			who = []string{hostPort(b.DNAT.IP, b.DNAT.Port), "no known pod or node"}
		default:
			who = []string{"destination unknown"}
		}
		if len(b.Flows) > 0 {
			who = append(who, "conntrack: "+plural(len(b.Flows), "connection", "connections"))
		}
		key := "pod/" + who[0]
		if b.DNAT != nil {
			key += "/" + hostPort(b.DNAT.IP, b.DNAT.Port)
		}
		label := strings.TrimPrefix(strings.Join(nonEmpty(share, snat), " · "), " · ")
		g.edge(from, g.node(podCluster, key, kindPod, who...), label, edgeNormal)
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func egressKey(e *report.Egress) string {
	return strings.Join([]string{e.Interface, e.Gateway, e.Node, e.Route, fmt.Sprint(e.Local)}, "|")
}

// egressLines is "tunl0 · IPIP tunnel", "via 192.168.2.2 to worker-1",
// then the route and the underlay route verbatim.
func egressLines(e *report.Egress) []string {
	head := e.Interface
	if k := egressKind(e); k != "" {
		head = strings.TrimPrefix(head+" · "+k, " · ")
	}
	if head == "" {
		head = "route"
	}
	lines := []string{head}
	var via []string
	if e.Gateway != "" {
		via = append(via, "via "+e.Gateway)
	}
	if e.Node != "" {
		via = append(via, "to "+e.Node)
	}
	if e.Local {
		via = append(via, "local: the destination is this node")
	}
	if len(via) > 0 {
		lines = append(lines, strings.Join(via, " "))
	}
	for _, l := range splitLines(e.Route) {
		lines = append(lines, "route "+l)
	}
	for _, l := range splitLines(e.Underlay) {
		lines = append(lines, "outer packet "+l)
	}
	return lines
}

// traceSourceText is "pod default/client (10.1.236.141) on worker-2".
func traceSourceText(tr *report.Trace) string {
	src := tr.Source
	withIP := func(s string) string {
		if src.IP != "" && s != src.IP {
			return s + " (" + src.IP + ")"
		}
		return s
	}
	switch src.Kind {
	case sourcePod:
		s := "pod " + orQuestion(nsName(src.Namespace, src.Name))
		if nsName(src.Namespace, src.Name) == "" {
			s = "pod " + orQuestion(src.IP)
		} else {
			s = withIP(s)
		}
		if tr.Node != "" {
			s += " on " + tr.Node
		}
		return s
	case sourceNode:
		name := src.Name
		if name == "" {
			name = tr.Node
		}
		return withIP("node " + orQuestion(name))
	default:
		s := "off-cluster client " + orQuestion(src.IP)
		if tr.Node != "" {
			s += " via " + tr.Node
		}
		return s
	}
}

// pathSplit locates the parts of a path in its steps (in the order the
// kernel meets them): the rule that leads into the service's load-balancing
// chain, that chain, and the first endpoint chain (where the DNAT is).
type pathSplit struct {
	steps         []report.Step
	entry         *report.Step
	service       string
	serviceTable  string
	endpoint      string
	endpointTable string
}

// splitPath reads the path's structure from the steps alone, whatever the
// rule syntax: the step right before the first step of a chain is the rule
// that jumped into it. So the endpoint chain is the chain of the first
// DNAT step, the service chain is the chain of the rule that jumped into
// the endpoint chain, and the entry rule is the one that jumped into the
// service chain. Without a DNAT, the first drop or reject step plays the
// endpoint chain's part.
func splitPath(steps []report.Step) pathSplit {
	sp := pathSplit{steps: steps}
	d := firstAction(steps, "dnat")
	if d < 0 {
		d = firstAction(steps, "reject", "drop")
	}
	if d < 0 {
		if n := len(steps); n > 0 {
			sp.entry = &steps[n-1]
		}
		return sp
	}
	sp.endpoint, sp.endpointTable = steps[d].Chain, steps[d].Table
	j := firstInChain(steps, steps[d].Chain)
	if j < 1 {
		return sp
	}
	into := steps[j-1]
	k := firstInChain(steps, into.Chain)
	if k < 1 {
		// The rule that jumped into the endpoint chain is the first step:
		// it is the entry rule, and there is no service chain.
		sp.entry = &steps[j-1]
		return sp
	}
	sp.service, sp.serviceTable = into.Chain, into.Table
	sp.entry = &steps[k-1]
	return sp
}

// dnatTable is the table of the DNAT step of an endpoint chain.
func (sp pathSplit) dnatTable(chain string) string {
	for _, s := range sp.steps {
		if s.Chain == chain && s.Action == "dnat" {
			return s.Table
		}
	}
	return ""
}

// ruleOf returns "table/chain" and the rule of the first step whose action
// is one of actions, to quote as evidence (nothing when there is none).
func (sp pathSplit) ruleOf(actions ...string) []string {
	if i := firstAction(sp.steps, actions...); i >= 0 {
		s := sp.steps[i]
		return []string{tableChain(s.Table, s.Chain), s.Rule}
	}
	return nil
}

func firstAction(steps []report.Step, actions ...string) int {
	for i, s := range steps {
		for _, a := range actions {
			if strings.EqualFold(s.Action, a) {
				return i
			}
		}
	}
	return -1
}

func firstInChain(steps []report.Step, chain string) int {
	for i, s := range steps {
		if s.Chain == chain {
			return i
		}
	}
	return -1
}
