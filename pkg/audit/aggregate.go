package audit

import (
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// The aggregator keeps the findings of every node once the node's data is
// gone, in memory that grows with the findings, never with the node data:
//
//   - findings are grouped by (ID, service, port, entry), the entry with
//     the node's own name and addresses replaced by placeholders (a
//     NodePort entry names the node's address);
//   - each group keeps the list of its nodes (4 bytes each) and the text
//     (message, evidence, hint) of its first node, with that node's name
//     and addresses replaced by placeholders: on most nodes the text is
//     then the same, and is kept once;
//   - a node whose text still differs keeps its own, for at most
//     VariantCap nodes per group; past that, the node's record is written
//     with the first node's text (its own name put back) and says so
//     (evidenceFrom).
//
// Replacing a node's name and addresses by placeholders and putting them
// back is exact for that node (the placeholders hold a NUL byte, which no
// message does), so every record whose text was kept is the analysis's
// own text.

// DefaultVariantCap is how many nodes of one group keep a text of their
// own.
const DefaultVariantCap = 16

// Placeholders of a node's name and addresses in kept texts.
const (
	phNode = "\x00node\x00"
	phAddr = "\x00addr%d\x00"
)

type aggregator struct {
	variantCap int

	nodes   []string // node index -> name
	nodeIdx map[string]int32
	// addrs are each node's addresses, for putting texts back.
	addrs [][]string

	groups map[groupKey]*group
	// svcFindings are the node-independent findings, by service.
	svcFindings map[string][]report.Finding
	svcSeen     map[string]bool
	// nodeInfo is what each reported node said besides findings.
	nodeInfo []NodeInfo
	counts   map[report.Severity]int
}

type groupKey struct {
	id, service, port, entry string
}

type text struct {
	message  string
	evidence []string
	hint     string
}

type group struct {
	key      groupKey
	severity report.Severity
	nodes    []int32
	first    text
	variants map[int32]*text
	// borrowed counts the nodes recorded with the first node's text.
	borrowed int
}

func newAggregator(variantCap int) *aggregator {
	if variantCap <= 0 {
		variantCap = DefaultVariantCap
	}
	return &aggregator{
		variantCap: variantCap, nodeIdx: map[string]int32{}, groups: map[groupKey]*group{},
		svcFindings: map[string][]report.Finding{}, svcSeen: map[string]bool{}, counts: map[report.Severity]int{},
	}
}

// normalizer replaces a node's name and addresses by placeholders and
// back.
type normalizer struct {
	from, to []string
}

func newNormalizer(node string, addrs []string) normalizer {
	n := normalizer{from: []string{node}, to: []string{phNode}}
	// Longer addresses first: 10.0.0.10 before 10.0.0.1.
	sorted := append([]string(nil), addrs...)
	sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for i, a := range sorted {
		if len(a) < 3 || a == node {
			continue
		}
		n.from = append(n.from, a)
		n.to = append(n.to, strings.Replace(phAddr, "%d", itoa(i), 1))
	}
	return n
}

func (n normalizer) norm(s string) string {
	for i, f := range n.from {
		if f != "" && strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, n.to[i])
		}
	}
	return s
}

// denorm is norm's inverse for the node norm was made for.
func (n normalizer) denorm(s string) string {
	if !strings.Contains(s, "\x00") {
		return s
	}
	for i := len(n.from) - 1; i >= 0; i-- {
		s = strings.ReplaceAll(s, n.to[i], n.from[i])
	}
	return s
}

func (n normalizer) normText(f report.Finding) text {
	t := text{message: n.norm(f.Message), hint: n.norm(f.Hint), evidence: make([]string, len(f.Evidence))}
	for i, e := range f.Evidence {
		t.evidence[i] = n.norm(e)
	}
	return t
}

func (n normalizer) denormText(t text) text {
	out := text{message: n.denorm(t.message), hint: n.denorm(t.hint), evidence: make([]string, len(t.evidence))}
	for i, e := range t.evidence {
		out.evidence[i] = n.denorm(e)
	}
	return out
}

func (t text) equal(u text) bool {
	if t.message != u.message || t.hint != u.hint || len(t.evidence) != len(u.evidence) {
		return false
	}
	for i := range t.evidence {
		if t.evidence[i] != u.evidence[i] {
			return false
		}
	}
	return true
}

// addService records a service's node-independent findings, once.
func (ag *aggregator) addService(service string, fs []report.Finding) {
	for _, f := range fs {
		k := service + "\x00" + f.ID + "\x00" + f.Port + "\x00" + f.Entry
		if ag.svcSeen[k] {
			continue
		}
		ag.svcSeen[k] = true
		f.Node = ""
		ag.svcFindings[service] = append(ag.svcFindings[service], f)
		ag.counts[f.Severity]++
	}
}

// addNode records a node's findings; nothing of res is kept but copies of
// the texts that differ from what is already kept.
func (ag *aggregator) addNode(res *analyze.NodeAudit, addrs []string) {
	idx, ok := ag.nodeIdx[res.Node]
	if !ok {
		idx = int32(len(ag.nodes))
		ag.nodes = append(ag.nodes, res.Node)
		ag.addrs = append(ag.addrs, addrs)
		ag.nodeIdx[res.Node] = idx
	}
	ag.nodeInfo = append(ag.nodeInfo, NodeInfo{Node: res.Node, Mode: res.Mode, Services: res.Services, Notes: res.Notes})
	n := newNormalizer(res.Node, addrs)
	for _, af := range res.Findings {
		f := af.Finding
		if f.Node == "" {
			// A service-level finding found on this node (ICMP-NOT-SERVED).
			ag.addService(af.Service, []report.Finding{f})
			continue
		}
		key := groupKey{id: f.ID, service: af.Service, port: f.Port, entry: n.norm(f.Entry)}
		g := ag.groups[key]
		t := n.normText(f)
		if g == nil {
			g = &group{key: key, severity: f.Severity, first: intern(t)}
			ag.groups[key] = g
		} else if !g.first.equal(t) {
			if len(g.variants) < ag.variantCap {
				if g.variants == nil {
					g.variants = map[int32]*text{}
				}
				cp := intern(t)
				g.variants[idx] = &cp
			} else {
				g.borrowed++
			}
		}
		if len(g.nodes) > 0 && g.nodes[len(g.nodes)-1] == idx {
			continue // the same finding twice on one node
		}
		g.nodes = append(g.nodes, idx)
		ag.counts[f.Severity]++
	}
}

// intern copies a text out of the analysis's memory: the strings of a
// finding may share their backing arrays with big ones (a rule line is a
// substring of its chain's block), which must not stay alive.
func intern(t text) text {
	out := text{message: strings.Clone(t.message), hint: strings.Clone(t.hint), evidence: make([]string, len(t.evidence))}
	for i, e := range t.evidence {
		out.evidence[i] = strings.Clone(e)
	}
	return out
}

// record is one (service, node, finding) of the output.
func (ag *aggregator) record(g *group, node int32, first int32) Record {
	n := newNormalizer(ag.nodes[node], ag.addrs[node])
	t, from := g.first, ""
	if v, ok := g.variants[node]; ok {
		t = *v
	} else if node != first && g.borrowed > 0 {
		// This node's text may be another one, not kept (VariantCap).
		from = ag.nodes[first]
	}
	t = n.denormText(t)
	return Record{
		Service: g.key.service, Node: ag.nodes[node], ID: g.key.id, Severity: g.severity,
		Port: g.key.port, Entry: n.denorm(g.key.entry), Message: t.message, Evidence: t.evidence, Hint: t.hint,
		EvidenceFrom: from,
	}
}

// sortedGroups returns the groups worst first: severity, ID, service,
// port, entry.
func (ag *aggregator) sortedGroups() []*group {
	out := make([]*group, 0, len(ag.groups))
	for _, g := range ag.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := a.severity.Rank(), b.severity.Rank(); ra != rb {
			return ra < rb
		}
		if a.key.id != b.key.id {
			return a.key.id < b.key.id
		}
		if a.key.service != b.key.service {
			return a.key.service < b.key.service
		}
		if a.key.port != b.key.port {
			return a.key.port < b.key.port
		}
		return a.key.entry < b.key.entry
	})
	return out
}

// eachRecord calls fn with every record, worst first: the service-level
// findings and then, group by group, one record per node (in node name
// order).
func (ag *aggregator) eachRecord(fn func(Record) error) error {
	var svcs []string
	for s := range ag.svcFindings {
		svcs = append(svcs, s)
	}
	sort.Strings(svcs)
	var svcRecs []Record
	for _, s := range svcs {
		for _, f := range ag.svcFindings[s] {
			svcRecs = append(svcRecs, Record{Service: s, ID: f.ID, Severity: f.Severity, Port: f.Port, Entry: f.Entry,
				Message: f.Message, Evidence: nonNil(f.Evidence), Hint: f.Hint})
		}
	}
	groups := ag.sortedGroups()
	// Merge by severity: service-level records of a severity come before
	// the node records of the same severity.
	sort.SliceStable(svcRecs, func(i, j int) bool {
		if ri, rj := svcRecs[i].Severity.Rank(), svcRecs[j].Severity.Rank(); ri != rj {
			return ri < rj
		}
		return svcRecs[i].ID < svcRecs[j].ID
	})
	si := 0
	for _, g := range groups {
		for si < len(svcRecs) && svcRecs[si].Severity.Rank() <= g.severity.Rank() {
			if err := fn(svcRecs[si]); err != nil {
				return err
			}
			si++
		}
		nodes := append([]int32(nil), g.nodes...)
		sort.Slice(nodes, func(i, j int) bool { return ag.nodes[nodes[i]] < ag.nodes[nodes[j]] })
		for _, n := range nodes {
			if err := fn(ag.record(g, n, g.nodes[0])); err != nil {
				return err
			}
		}
	}
	for ; si < len(svcRecs); si++ {
		if err := fn(svcRecs[si]); err != nil {
			return err
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	return string(b[p:])
}
