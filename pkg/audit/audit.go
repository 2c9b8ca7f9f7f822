// Package audit is `kubectl svcpath audit`: the analysis of every service
// on every node of a cluster, at the scale of big clusters (docs/audit.md).
//
// The pipeline is a stream: a source (live probe pods, pkg/probe's Stream,
// or a saved snapshot directory) delivers one node's data at a time on a
// channel; each node is parsed and every audited service is analysed on it
// (analyze.Audit, the single-service analysis of pkg/analyze), the node's
// findings go to an aggregator, and the node's data is dropped before the
// next one is read. Memory grows with the findings, not with the nodes:
// the sources hand over at most as many documents as probes run at once.
package audit

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// APIVersion and Kind of the audit's JSON and YAML output.
const (
	APIVersion = report.APIVersion
	Kind       = "AuditReport"
)

// NodeData is what a source delivers for one node: its data, or why it
// has none.
type NodeData struct {
	Node string
	// Data is the node's collected state; nil when the node did not
	// report.
	Data *snapshot.Node
	// Reason says why the node did not report (Data nil).
	Reason string
	// Err is the error behind Reason, when there is one.
	Err error
	// Warnings are what the agent could not read on the node, and the
	// like: the node still reported.
	Warnings []string
}

// Unreported is a node that was to be audited and did not report.
type Unreported struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Skipped is a service that is listed but not analysed on the nodes.
type Skipped struct {
	Service string `json:"service"`
	Reason  string `json:"reason"`
}

// NodeInfo is what a reported node said besides its findings.
type NodeInfo struct {
	Node     string   `json:"node"`
	Mode     string   `json:"mode"`
	Services int      `json:"services"`
	Notes    []string `json:"notes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Record is one finding of one service on one node (Node "": a finding
// about the service that no node changes; Service "": a finding about the
// node itself).
type Record struct {
	Service  string          `json:"service,omitempty"`
	Node     string          `json:"node,omitempty"`
	ID       string          `json:"id"`
	Severity report.Severity `json:"severity"`
	Port     string          `json:"port,omitempty"`
	Entry    string          `json:"entry,omitempty"`
	Message  string          `json:"message"`
	Evidence []string        `json:"evidence"`
	Hint     string          `json:"hint,omitempty"`
	// EvidenceFrom is set when the message and evidence are those of the
	// named node (the audit keeps a text of its own for a limited number
	// of nodes per finding): this node has the same finding, and its own
	// evidence may differ in details (line numbers, a pod's name).
	EvidenceFrom string `json:"evidenceFrom,omitempty"`
}

// Options tune Run.
type Options struct {
	// Services are the services to audit (nil: every Service of the
	// objects); Skipped the ones listed without analysis.
	Services []*corev1.Service
	Skipped  []Skipped
	// Unreported are nodes known up front not to report (NotReady).
	Unreported []Unreported
	// Workers is how many services of a node are analysed at once (0:
	// GOMAXPROCS).
	Workers int
	// VariantCap is how many nodes of one finding keep a text of their
	// own (0: DefaultVariantCap).
	VariantCap int
	// Save, when set, is given each node's data before its analysis
	// (--save).
	Save func(*snapshot.Node) error
	// Progress, when set, is told each node as it is done.
	Progress func(node string, reported bool)
	// Source names where the data came from ("live, context X",
	// "snapshot DIR").
	Source string
}

// Result is an audit's outcome.
type Result struct {
	Source string
	// Services is how many services were analysed on the nodes.
	Services int
	Skipped  []Skipped
	// Reported are the nodes that reported, with their mode and notes,
	// sorted by name.
	Reported   []NodeInfo
	Unreported []Unreported
	// Counts are the findings (records) by severity.
	Counts map[report.Severity]int

	ag *aggregator
}

// Run audits the services of objs on the nodes the source delivers on
// nodes, one node at a time, as they come, and returns when nodes is
// closed. The source stops on ctx's end: the nodes it delivers after
// (unreported, "interrupted") are listed as such, so an interrupted audit
// still says what it found. A save error ends the run at once (the caller
// then stops and drains the source).
func Run(ctx context.Context, objs snapshot.Objects, nodes <-chan NodeData, opts Options) (*Result, error) {
	a := analyze.NewAudit(objs, opts.Services)
	a.Workers = opts.Workers
	res := &Result{Source: opts.Source, Skipped: append([]Skipped(nil), opts.Skipped...), ag: newAggregator(opts.VariantCap)}
	for _, s := range a.Services() {
		key := s.Namespace + "/" + s.Name
		if s.Skipped != "" {
			res.Skipped = append(res.Skipped, Skipped{Service: key, Reason: s.Skipped})
			continue
		}
		res.Services++
		res.ag.addService(key, s.Findings)
	}
	res.Unreported = append(res.Unreported, opts.Unreported...)
	addrs := nodeAddrs(objs)
	var warnings = map[string][]string{}
	for nd := range nodes {
		if nd.Data == nil {
			reason := nd.Reason
			if reason == "" && nd.Err != nil {
				reason = nd.Err.Error()
			}
			res.Unreported = append(res.Unreported, Unreported{Node: nd.Node, Reason: reason})
			if opts.Progress != nil {
				opts.Progress(nd.Node, false)
			}
			continue
		}
		if opts.Save != nil {
			if err := opts.Save(nd.Data); err != nil {
				return nil, err
			}
		}
		na := a.Node(nd.Data)
		nd.Data = nil
		res.ag.addNode(na, addrs[nd.Node])
		if len(nd.Warnings) > 0 {
			warnings[nd.Node] = nd.Warnings
		}
		if opts.Progress != nil {
			opts.Progress(nd.Node, true)
		}
	}
	res.Reported = res.ag.nodeInfo
	for i := range res.Reported {
		res.Reported[i].Warnings = warnings[res.Reported[i].Node]
	}
	sort.Slice(res.Reported, func(i, j int) bool { return res.Reported[i].Node < res.Reported[j].Node })
	sort.Slice(res.Unreported, func(i, j int) bool { return res.Unreported[i].Node < res.Unreported[j].Node })
	sort.Slice(res.Skipped, func(i, j int) bool { return res.Skipped[i].Service < res.Skipped[j].Service })
	res.Counts = res.ag.counts
	return res, nil
}

// nodeAddrs are the Node objects' addresses, by node name.
func nodeAddrs(objs snapshot.Objects) map[string][]string {
	out := map[string][]string{}
	for _, n := range objs.Nodes {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
				out[n.Name] = append(out[n.Name], a.Address)
			}
		}
	}
	return out
}

// Records calls fn with every finding record, worst first (severity, ID,
// service, port, entry, node).
func (r *Result) Records(fn func(Record) error) error {
	return r.ag.eachRecord(fn)
}

// AtOrAbove counts the records at or above a severity.
func (r *Result) AtOrAbove(s report.Severity) map[report.Severity]int {
	out := map[report.Severity]int{}
	for sev, n := range r.Counts {
		if n > 0 && sev.Rank() <= s.Rank() {
			out[sev] = n
		}
	}
	return out
}

// Summary says the audit in one line: "2 errors, 1 warning; 118/120 nodes
// reported, 340 services".
func (r *Result) Summary() string {
	var parts []string
	for _, s := range []report.Severity{report.SeverityError, report.SeverityWarning, report.SeverityInfo} {
		if n := r.Counts[s]; n > 0 {
			parts = append(parts, plural(n, string(s)))
		}
	}
	f := "no findings"
	if len(parts) > 0 {
		f = joinParts(parts)
	}
	total := len(r.Reported) + len(r.Unreported)
	return fmt.Sprintf("%s; %d/%d nodes reported, %s audited", f, len(r.Reported), total, plural(r.Services, "service"))
}

func plural(n int, what string) string {
	if n == 1 || what == string(report.SeverityInfo) {
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func joinParts(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
