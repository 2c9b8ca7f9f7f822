package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/render"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// TextOptions tune Text.
type TextOptions struct {
	// Color writes ANSI colours.
	Color bool
	// MaxRows caps the rows of each table (0: 100); the JSON output has
	// everything.
	MaxRows int
	// MaxNames caps the node or service names quoted in one cell (0: 4).
	MaxNames int
}

// row is one line of the findings table: a finding on one service, on
// some nodes.
type row struct {
	severity report.Severity
	id       string
	service  string // "" a node finding
	nodes    []int32
	all      bool // a service-level finding: every node
	services int  // collapsed info rows: how many services
}

// Text writes the audit summary: the findings by service and by node,
// worst first, the nodes that did not report and the services skipped,
// and a one-line summary (drawn by render.AuditText).
func Text(w io.Writer, r *Result, o TextOptions) error {
	return render.AuditText(w, r.summary(o), render.TextOptions{Color: o.Color})
}

// summary lays the audit out as tables.
func (r *Result) summary(o TextOptions) *render.AuditSummary {
	if o.MaxRows <= 0 {
		o.MaxRows = 100
	}
	if o.MaxNames <= 0 {
		o.MaxNames = 4
	}
	ag := r.ag
	reported := len(r.Reported)
	total := reported + len(r.Unreported)
	s := &render.AuditSummary{Title: fmt.Sprintf("Audit · %s · %d/%d nodes reported · %s audited",
		orDash(r.Source), reported, total, plural(r.Services, "service"))}
	if len(r.Skipped) > 0 {
		s.Title += fmt.Sprintf(" (%d skipped)", len(r.Skipped))
	}

	// Node findings by node, to say "PROXY-STALE there".
	nodeIDs := map[int32][]string{}
	for _, g := range ag.groups {
		if g.key.service == "" && g.severity.Rank() <= report.SeverityWarning.Rank() {
			for _, n := range g.nodes {
				nodeIDs[n] = appendUniq(nodeIDs[n], g.key.id)
			}
		}
	}

	rows := r.rows()
	if len(rows) == 0 {
		s.Sections = append(s.Sections, render.AuditSection{Heading: "No findings.", Good: true})
	} else {
		sec := render.AuditSection{Heading: "Findings by service, worst first", Headers: []string{"SEVERITY", "FINDING", "SERVICE", "WHERE"}}
		for i, rw := range rows {
			if i == o.MaxRows {
				sec.Note = fmt.Sprintf("... %d more rows (-o json has every finding)", len(rows)-i)
				break
			}
			svc := rw.service
			switch {
			case rw.services > 0:
				svc = plural(rw.services, "service")
			case svc == "":
				svc = "(the node)"
			}
			sec.Rows = append(sec.Rows, []string{string(rw.severity), rw.id, svc, r.where(rw, reported, nodeIDs, o.MaxNames)})
		}
		s.Sections = append(s.Sections, sec)

		byNode := r.nodeRows()
		if len(byNode) == 0 {
			s.Sections = append(s.Sections, render.AuditSection{Heading: "No node has an error or a warning.", Good: true})
		} else {
			sec := render.AuditSection{Heading: "Findings by node, worst first", Headers: []string{"NODE", "ERRORS", "WARNINGS", "INFO", "FINDINGS"}, SeverityColumn: -1}
			for i, nr := range byNode {
				if i == o.MaxRows {
					sec.Note = fmt.Sprintf("... %d more nodes with errors or warnings", len(byNode)-i)
					break
				}
				sec.Rows = append(sec.Rows, []string{nr.node, itoa(nr.counts[report.SeverityError]), itoa(nr.counts[report.SeverityWarning]), itoa(nr.counts[report.SeverityInfo]), nr.ids})
			}
			if clean := reported - len(byNode); clean > 0 && sec.Note == "" {
				sec.Note = fmt.Sprintf("%s with no error or warning", plural(clean, "other node"))
			}
			s.Sections = append(s.Sections, sec)
		}
	}

	if len(r.Unreported) > 0 {
		sec := render.AuditSection{Heading: fmt.Sprintf("Nodes that did not report (%d)", len(r.Unreported)), Headers: []string{"NODE", "REASON"}, SeverityColumn: -1}
		for i, u := range r.Unreported {
			if i == o.MaxRows {
				sec.Note = fmt.Sprintf("... %d more (-o json lists them all)", len(r.Unreported)-i)
				break
			}
			sec.Rows = append(sec.Rows, []string{u.Node, clip(u.Reason, 160)})
		}
		s.Sections = append(s.Sections, sec)
	}
	if len(r.Skipped) > 0 {
		sec := render.AuditSection{Heading: fmt.Sprintf("Services not analysed on the nodes (%d)", len(r.Skipped)), SeverityColumn: -1}
		byReason := map[string][]string{}
		var reasons []string
		for _, sk := range r.Skipped {
			k := skipKind(sk.Reason)
			if byReason[k] == nil {
				reasons = append(reasons, k)
			}
			byReason[k] = append(byReason[k], sk.Service)
		}
		sort.Strings(reasons)
		for _, k := range reasons {
			sec.Lines = append(sec.Lines, fmt.Sprintf("%s (%d): %s", k, len(byReason[k]), names(byReason[k], o.MaxNames)))
		}
		s.Sections = append(s.Sections, sec)
	}
	var other []string
	for _, n := range r.Reported {
		switch n.Mode {
		case "iptables", "nftables", "ipvs":
		default:
			other = append(other, fmt.Sprintf("%s (%s)", n.Node, n.Mode))
		}
	}
	if len(other) > 0 {
		s.Sections = append(s.Sections, render.AuditSection{SeverityColumn: -1,
			Note: fmt.Sprintf("Service rules not evaluated (an eBPF datapath, no kube-proxy rules, or unreadable data; see the nodes' notes in -o json): %s", names(other, o.MaxNames))})
	}
	s.Summary = r.Summary()
	for _, sev := range []report.Severity{report.SeverityError, report.SeverityWarning} {
		if r.Counts[sev] > 0 {
			s.SummarySeverity = sev
			break
		}
	}
	return s
}

// rows are the findings table's rows, worst first: one per (severity,
// finding, service) with the union of the nodes of its ports and entries;
// info findings on more than one service are collapsed into one row per
// finding.
func (r *Result) rows() []row {
	ag := r.ag
	type key struct {
		sev     report.Severity
		id, svc string
	}
	byKey := map[key]*row{}
	var out []*row
	for _, g := range ag.groups {
		k := key{g.severity, g.key.id, g.key.service}
		rw := byKey[k]
		if rw == nil {
			rw = &row{severity: g.severity, id: g.key.id, service: g.key.service}
			byKey[k] = rw
			out = append(out, rw)
		}
		rw.nodes = append(rw.nodes, g.nodes...)
	}
	for svc, fs := range ag.svcFindings {
		for _, f := range fs {
			k := key{f.Severity, f.ID, svc}
			if byKey[k] == nil {
				rw := &row{severity: f.Severity, id: f.ID, service: svc, all: true}
				byKey[k] = rw
				out = append(out, rw)
			} else {
				byKey[k].all = true
			}
		}
	}
	for _, rw := range out {
		rw.nodes = uniqNodes(rw.nodes)
	}
	// Collapse the info rows of a finding found on several services.
	infoRows := map[string][]*row{}
	var kept []*row
	for _, rw := range out {
		if rw.severity == report.SeverityInfo && rw.service != "" {
			infoRows[rw.id] = append(infoRows[rw.id], rw)
			continue
		}
		kept = append(kept, rw)
	}
	for id, rs := range infoRows {
		if len(rs) == 1 {
			kept = append(kept, rs[0])
			continue
		}
		c := &row{severity: report.SeverityInfo, id: id, services: len(rs)}
		for _, x := range rs {
			c.nodes = append(c.nodes, x.nodes...)
			c.all = c.all || x.all
		}
		c.nodes = uniqNodes(c.nodes)
		kept = append(kept, c)
	}
	sort.Slice(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if ra, rb := a.severity.Rank(), b.severity.Rank(); ra != rb {
			return ra < rb
		}
		if a.all != b.all {
			return a.all
		}
		if len(a.nodes) != len(b.nodes) {
			return len(a.nodes) > len(b.nodes)
		}
		if a.id != b.id {
			return a.id < b.id
		}
		return a.service < b.service
	})
	res := make([]row, len(kept))
	for i, rw := range kept {
		res[i] = *rw
	}
	return res
}

// where says on which nodes a row's finding is: "3/120 nodes: worker-7,
// worker-9, worker-12 — PROXY-STALE there".
func (r *Result) where(rw row, reported int, nodeIDs map[int32][]string, maxNames int) string {
	ag := r.ag
	if rw.all && len(rw.nodes) == 0 {
		return "the service itself (every node)"
	}
	var ns []string
	for _, n := range rw.nodes {
		ns = append(ns, ag.nodes[n])
	}
	sort.Strings(ns)
	s := fmt.Sprintf("%d/%d nodes", len(rw.nodes), reported)
	if len(rw.nodes) == reported && reported > 1 {
		s = fmt.Sprintf("all %d nodes", reported)
	} else {
		s += ": " + names(ns, maxNames)
	}
	if rw.all {
		s = "the service itself; " + s
	}
	if rw.service == "" {
		return s
	}
	// The node findings of those nodes, which often explain it.
	count := map[string]int{}
	var ids []string
	for _, n := range rw.nodes {
		for _, id := range nodeIDs[n] {
			if count[id] == 0 {
				ids = append(ids, id)
			}
			count[id]++
		}
	}
	sort.Strings(ids)
	var there []string
	for _, id := range ids {
		if count[id] == len(rw.nodes) {
			there = append(there, id+" there")
		} else {
			there = append(there, fmt.Sprintf("%s on %d of them", id, count[id]))
		}
	}
	if len(there) > 0 {
		s += " — " + strings.Join(there, ", ")
	}
	return s
}

type nodeRow struct {
	node   string
	counts map[report.Severity]int
	ids    string
}

// nodeRows are the reported nodes with errors or warnings, worst first.
func (r *Result) nodeRows() []nodeRow {
	ag := r.ag
	type agg struct {
		counts map[report.Severity]int
		own    []string
		svcs   map[string]int
		order  []string
	}
	per := map[int32]*agg{}
	for _, g := range ag.sortedGroups() {
		for _, n := range g.nodes {
			a := per[n]
			if a == nil {
				a = &agg{counts: map[report.Severity]int{}, svcs: map[string]int{}}
				per[n] = a
			}
			a.counts[g.severity]++
			if g.severity == report.SeverityInfo {
				continue // counted, not named: the rows are about what is wrong
			}
			if g.key.service == "" {
				a.own = appendUniq(a.own, g.key.id)
				continue
			}
			if a.svcs[g.key.id] == 0 {
				a.order = append(a.order, g.key.id)
			}
			a.svcs[g.key.id]++
		}
	}
	var out []nodeRow
	for n, a := range per {
		if a.counts[report.SeverityError]+a.counts[report.SeverityWarning] == 0 {
			continue
		}
		parts := append([]string(nil), a.own...)
		for _, id := range a.order {
			parts = append(parts, fmt.Sprintf("%s ×%d", id, a.svcs[id]))
		}
		out = append(out, nodeRow{node: ag.nodes[n], counts: a.counts, ids: clip(strings.Join(parts, ", "), 120)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, s := range []report.Severity{report.SeverityError, report.SeverityWarning, report.SeverityInfo} {
			if a.counts[s] != b.counts[s] {
				return a.counts[s] > b.counts[s]
			}
		}
		return a.node < b.node
	})
	return out
}

// JSON writes the audit as one JSON document (kind AuditReport), two-space
// indented; the findings are written one by one, never all in memory.
func JSON(w io.Writer, r *Result) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	head, err := marshalIndent(r.header(), "")
	if err != nil {
		return err
	}
	// The header object without its closing brace, then "findings".
	head = bytes.TrimRight(bytes.TrimSuffix(bytes.TrimRight(head, "\n"), []byte("}")), "\n")
	bw.Write(head)
	bw.WriteString(",\n  \"findings\": [")
	n := 0
	err = r.Records(func(rec Record) error {
		if rec.Evidence == nil {
			rec.Evidence = []string{}
		}
		b, err := marshalIndent(rec, "    ")
		if err != nil {
			return err
		}
		if n > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n    ")
		bw.Write(bytes.TrimRight(b, "\n"))
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

// YAML writes the same document as JSON, converted (keys sorted, as
// kubectl -o yaml does). Unlike JSON it holds the whole document in
// memory.
func YAML(w io.Writer, r *Result) error {
	var buf bytes.Buffer
	if err := JSON(&buf, r); err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(buf.Bytes())
	if err != nil {
		return fmt.Errorf("convert the audit to yaml: %w", err)
	}
	_, err = w.Write(y)
	return err
}

// header is the document without its findings.
type header struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Source     string                  `json:"source,omitempty"`
	Summary    map[report.Severity]int `json:"summary"`
	Services   serviceCounts           `json:"services"`
	Nodes      nodeCounts              `json:"nodes"`
}

type serviceCounts struct {
	Audited int       `json:"audited"`
	Skipped []Skipped `json:"skipped"`
}

type nodeCounts struct {
	Reported   []NodeInfo   `json:"reported"`
	Unreported []Unreported `json:"unreported"`
}

func (r *Result) header() header {
	sum := map[report.Severity]int{report.SeverityError: 0, report.SeverityWarning: 0, report.SeverityInfo: 0}
	for s, n := range r.Counts {
		sum[s] = n
	}
	h := header{APIVersion: APIVersion, Kind: Kind, Source: r.Source, Summary: sum,
		Services: serviceCounts{Audited: r.Services, Skipped: r.Skipped},
		Nodes:    nodeCounts{Reported: r.Reported, Unreported: r.Unreported}}
	if h.Services.Skipped == nil {
		h.Services.Skipped = []Skipped{}
	}
	if h.Nodes.Reported == nil {
		h.Nodes.Reported = []NodeInfo{}
	}
	if h.Nodes.Unreported == nil {
		h.Nodes.Unreported = []Unreported{}
	}
	return h
}

func marshalIndent(v any, prefix string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode the audit as json: %w", err)
	}
	return buf.Bytes(), nil
}

func uniqNodes(ns []int32) []int32 {
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	out := ns[:0]
	for i, n := range ns {
		if i == 0 || n != ns[i-1] {
			out = append(out, n)
		}
	}
	return out
}

func appendUniq(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// names quotes at most max names: "a, b, c and 12 more".
func names(ns []string, max int) string {
	if len(ns) <= max {
		return strings.Join(ns, ", ")
	}
	return strings.Join(ns[:max], ", ") + fmt.Sprintf(" and %d more", len(ns)-max)
}

func skipKind(reason string) string {
	switch {
	case strings.Contains(reason, "headless"):
		return "headless"
	case strings.Contains(reason, "ExternalName"):
		return "ExternalName"
	case strings.Contains(reason, "another proxy"):
		return "served by another proxy"
	}
	return reason
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
