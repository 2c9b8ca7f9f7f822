package render

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// TextOptions tune the text report.
type TextOptions struct {
	// Color turns on ANSI colours. When false the output holds no escape
	// sequence at all. The caller resolves --color and NO_COLOR.
	Color bool
	// Width is the terminal width the trace narrative is wrapped to, with a
	// hanging indent; 0 (or a width too narrow to be useful) leaves it
	// unwrapped. Evidence (rule lines, routes, conntrack entries, text in
	// backquotes) is never wrapped or truncated.
	Width int
}

// Text writes the report for people: the service, its DNS names and its
// endpoints; the traced connection (--from) with its branches and the
// conntrack flows the node really holds; for each node and entry point the
// numbered rules a packet goes through and where it ends; a legend of the
// addresses; then the findings, worst first, and a one-line summary. Rule
// lines, routes and conntrack entries are evidence and are printed whole,
// never truncated or wrapped.
func Text(w io.Writer, r *report.Report, opts TextOptions) error {
	if r == nil {
		return errNilReport
	}
	t := &textWriter{st: newStyles(w, opts.Color), width: opts.Width}
	t.report(r)
	_, err := io.WriteString(w, t.b.String())
	return err
}

// Indentation of the text report, in spaces.
const (
	indentField   = 2 // fields of a section
	indentEntry   = 4 // an entry point under a port
	indentStep    = 6 // numbered steps and targets of an entry point
	labelWidth    = 14
	severityWidth = 7 // len("WARNING")
)

type textWriter struct {
	b     strings.Builder
	st    styles
	width int // wrap prose to this width; 0: no wrapping
}

// line writes one line made of already styled parts, indented.
func (t *textWriter) line(indent int, parts ...string) {
	t.b.WriteString(strings.Repeat(" ", indent))
	for _, p := range parts {
		t.b.WriteString(p)
	}
	t.b.WriteByte('\n')
}

func (t *textWriter) blank() { t.b.WriteByte('\n') }

// field writes "label  value" with labels aligned.
func (t *textWriter) field(label, value string) { t.fieldAt(indentField, label, value) }

// fieldAt is field at another indentation.
func (t *textWriter) fieldAt(indent int, label, value string) {
	if label == "" {
		t.line(indent+labelWidth, value)
		return
	}
	t.line(indent, t.st.label.Render(label), pad(label, labelWidth), value)
}

func (t *textWriter) report(r *report.Report) {
	findings := allFindings(r)
	t.service(&r.Service, r.Source)
	if r.DNS != nil {
		t.dns(r.DNS)
	}
	if r.Service.ExternalName == "" || len(r.Service.Endpoints) > 0 {
		t.endpoints(r.Service.Endpoints)
	}
	if r.Trace != nil {
		t.blank()
		t.trace(r.Trace, traceConntrack(r))
	}
	for i := range r.Conntrack {
		t.blank()
		t.conntrack(&r.Conntrack[i])
	}
	nodes := append([]report.Node(nil), r.Nodes...)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for i := range nodes {
		t.blank()
		t.node(&nodes[i], findings)
	}
	if len(nodes) == 0 && r.Service.Explanation == "" {
		t.blank()
		t.line(0, t.st.warn.Render("No node was analysed."))
	}
	t.addresses(r.Addresses)
	t.findings(findings)
	t.blank()
	t.summary(findings, len(nodes))
}

func (t *textWriter) service(s *report.Service, source string) {
	name := s.Name
	if s.Namespace != "" {
		name = s.Namespace + "/" + s.Name
	}
	kind := s.Type
	if s.Headless {
		kind += " (headless)"
	}
	title := []string{t.st.label.Render("Service "), t.st.title.Render(name)}
	if kind != "" {
		title = append(title, t.st.label.Render(" · "), kind)
	}
	t.line(0, title...)

	switch {
	case len(s.ClusterIPs) > 0:
		t.field("Cluster IPs", t.addrs(s.ClusterIPs))
	case s.Headless:
		t.field("Cluster IP", "None")
	}
	if s.ExternalName != "" {
		t.field("External name", t.st.addr.Render(s.ExternalName))
	}
	if len(s.ExternalIPs) > 0 {
		t.field("External IPs", t.addrs(s.ExternalIPs))
	}
	if len(s.LoadBalancerIPs) > 0 {
		t.field("LB ingress", t.addrs(s.LoadBalancerIPs))
	}
	for i, p := range s.Ports {
		label := ""
		if i == 0 {
			label = "Ports"
		}
		t.field(label, servicePort(p))
	}
	if pol := policies(s); pol != "" {
		t.field("Policies", pol)
	}
	if source != "" {
		t.field("Source", source)
	}
	if s.Explanation != "" {
		t.blank()
		for _, l := range strings.Split(s.Explanation, "\n") {
			t.line(indentField, t.st.warn.Render(l))
		}
	}
}

func (t *textWriter) addrs(ips []string) string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = t.st.addr.Render(ip)
	}
	return strings.Join(out, ", ")
}

// servicePort formats a service port as "http 80/TCP → 8080, nodePort 30080".
func servicePort(p report.ServicePort) string {
	var b strings.Builder
	if p.Name != "" {
		b.WriteString(p.Name + " ")
	}
	fmt.Fprintf(&b, "%d/%s", p.Port, p.Protocol)
	if p.TargetPort != "" {
		b.WriteString(" → " + p.TargetPort)
	}
	if p.NodePort != 0 {
		fmt.Fprintf(&b, ", nodePort %d", p.NodePort)
	}
	return b.String()
}

func policies(s *report.Service) string {
	var out []string
	if s.SessionAffinity != "" {
		a := "sessionAffinity " + s.SessionAffinity
		if s.AffinityTimeoutSeconds > 0 {
			a += fmt.Sprintf(" (%ds)", s.AffinityTimeoutSeconds)
		}
		out = append(out, a)
	}
	if s.InternalTrafficPolicy != "" {
		out = append(out, "internalTrafficPolicy "+s.InternalTrafficPolicy)
	}
	if s.ExternalTrafficPolicy != "" {
		out = append(out, "externalTrafficPolicy "+s.ExternalTrafficPolicy)
	}
	return strings.Join(out, ", ")
}

func (t *textWriter) endpoints(eps []report.Endpoint) {
	eps = append([]report.Endpoint(nil), eps...)
	sort.SliceStable(eps, func(i, j int) bool {
		a, b := eps[i], eps[j]
		if a.PortName != b.PortName {
			return a.PortName < b.PortName
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if c := compareIP(a.IP, b.IP); c != 0 {
			return c < 0
		}
		return a.Port < b.Port
	})
	ready := 0
	ports := map[string]bool{}
	zones := false
	for _, e := range eps {
		if e.Ready {
			ready++
		}
		ports[e.PortName+"/"+e.Protocol] = true
		zones = zones || e.Zone != ""
	}
	t.blank()
	count := fmt.Sprintf("%d ready of %d", ready, len(eps))
	switch {
	case len(eps) == 0:
		count = t.st.warn.Render("none")
	case ready == 0:
		count = t.st.bad.Render(count)
	case ready < len(eps):
		count = t.st.warn.Render(count)
	default:
		count = t.st.good.Render(count)
	}
	t.line(0, t.st.heading.Render("Endpoints"), t.st.label.Render(" · "), count)
	if len(eps) == 0 {
		return
	}

	tbl := table{}
	head := []string{}
	if len(ports) > 1 {
		head = append(head, "PORT")
	}
	head = append(head, "ADDRESS", "POD", "NODE")
	if zones {
		head = append(head, "ZONE")
	}
	head = append(head, "READY", "SERVING", "TERMINATING")
	tbl.add(t.st.label, head...)
	for _, e := range eps {
		var row []cell
		if len(ports) > 1 {
			row = append(row, plain(e.PortName+"/"+e.Protocol))
		}
		row = append(row,
			cell{hostPort(e.IP, e.Port), t.st.addr},
			orDash(e.Pod), orDash(e.Node))
		if zones {
			row = append(row, orDash(e.Zone))
		}
		row = append(row,
			yesNo(e.Ready, t.st.good, t.st.bad),
			yesNo(e.Serving, t.st.good, t.st.bad),
			yesNo(e.Terminating, t.st.warn, t.st.label))
		tbl.rows = append(tbl.rows, row)
	}
	tbl.write(t, indentField)
}

func (t *textWriter) node(n *report.Node, all []report.Finding) {
	head := []string{t.st.label.Render("Node "), t.st.heading.Render(n.Name)}
	switch n.Mode {
	case "":
	case "none":
		head = append(head, t.st.label.Render(" · "), t.st.bad.Render("no proxy rules"))
	default:
		head = append(head, t.st.label.Render(" · "), n.Mode)
	}
	if len(n.Addresses) > 0 {
		head = append(head, t.st.label.Render(" · "), t.addrs(n.Addresses))
	}
	var mine []report.Finding
	for _, f := range all {
		if f.Node == n.Name {
			mine = append(mine, f)
		}
	}
	if c := t.counts(mine, false); c != "" {
		head = append(head, t.st.label.Render(" · "), c)
	}
	t.line(0, head...)
	if n.Partial {
		t.line(indentField, t.st.warn.Render("partial data: only this service's chains were collected; absent chains are not called missing"))
	}
	for _, note := range n.Notes {
		t.line(indentField, t.st.label.Render("note: "), note)
	}
	if len(n.Ports) == 0 {
		t.line(indentField, t.st.label.Render("no service port traced on this node"))
	}
	for _, p := range n.Ports {
		t.port(&p)
	}
	if len(n.Verified) > 0 {
		t.verified(n.Verified)
	}
}

// verified prints the real connections of --verify, each with what
// conntrack saw and whether it matches the rules.
func (t *textWriter) verified(vs []report.Verified) {
	t.line(indentField, t.st.subhead.Render("verified"), t.st.label.Render(" · real connections made by the agent"))
	for _, v := range vs {
		mark, style := "✓", t.st.good
		if !v.Agrees {
			mark, style = "✗", t.st.bad
		}
		t.line(indentEntry, style.Render(mark), " ", v.Label)
		var facts []string
		if v.Connected {
			f := fmt.Sprintf("connected from %s to %s", v.Source, v.Target)
			if v.Micros > 0 {
				f += fmt.Sprintf(" in %.1f ms", float64(v.Micros)/1000)
			}
			facts = append(facts, f)
		} else {
			facts = append(facts, "did not connect: "+v.Error)
		}
		if v.DNAT != "" {
			facts = append(facts, "DNAT to "+v.DNAT)
		} else if v.Conntrack != "" {
			facts = append(facts, "no DNAT")
		}
		if v.SNAT != "" {
			facts = append(facts, "SNAT to "+v.SNAT)
		} else if v.Conntrack != "" {
			facts = append(facts, "no SNAT")
		}
		t.line(indentEntry+2, strings.Join(facts, ", "))
		if !v.Agrees {
			t.line(indentEntry+2, t.st.bad.Render("differs from the rules: "), v.Disagreement)
		}
	}
}

func (t *textWriter) port(p *report.Port) {
	name := fmt.Sprintf("port %d/%s", p.Port, p.Protocol)
	if p.Name != "" {
		name = fmt.Sprintf("port %s %d/%s", p.Name, p.Port, p.Protocol)
	}
	parts := []string{t.st.subhead.Render(name)}
	if p.Family != "" {
		parts = append(parts, t.st.label.Render(" · "+p.Family))
	}
	t.line(indentField, parts...)
	if len(p.Entries) == 0 {
		t.line(indentEntry, t.st.label.Render("no entry point"))
	}
	for i := range p.Entries {
		t.entry(&p.Entries[i])
	}
}

func (t *textWriter) entry(e *report.Entry) {
	t.line(indentEntry, t.st.subhead.Render(e.Kind+" "), t.st.addr.Render(hostPort(e.IP, e.Port)))
	t.steps(e.Steps, indentStep, 1)
	if len(e.Steps) == 0 {
		t.line(indentStep, t.st.label.Render("no rule on the path"))
	}

	t.targets(e.Targets, e.DropProbability, e.RejectProbability, "")
	if !sameOutcome(e) {
		t.targets(e.OffClusterTargets, e.OffClusterDropProbability, e.OffClusterRejectProbability, "off-cluster clients:")
	}
	t.masquerade(e.Masquerade)
	t.expected(e)
}

// steps writes rule steps numbered from first: the number column is as wide
// as the biggest number, and a step's body (the rule line, verbatim, then its
// explanation) lines up under its header.
func (t *textWriter) steps(steps []report.Step, indent, first int) {
	numWidth := len(strconv.Itoa(first + len(steps) - 1))
	for i, s := range steps {
		num := fmt.Sprintf("%*d.", numWidth, first+i)
		head := []string{t.st.num.Render(num), " ", t.st.chain.Render(tableChain(s.Table, s.Chain))}
		if s.Action != "" {
			head = append(head, t.st.label.Render(" · "+s.Action))
		}
		if s.Probability > 0 && !isOne(s.Probability) {
			head = append(head, t.st.label.Render(" · "), t.st.pct.Render(percent(s.Probability)))
		}
		if s.Line > 0 {
			head = append(head, t.st.label.Render(fmt.Sprintf(" · line %d", s.Line)))
		}
		t.line(indent, head...)
		body := indent + len(num) + 1
		for _, l := range splitLines(s.Rule) {
			t.line(body, t.st.rule.Render(l))
		}
		for _, l := range splitLines(s.Explanation) {
			t.line(body, l)
		}
	}
}

// targets writes where new connections end: one line per DNAT target, then
// the dropped and rejected shares when non-zero.
func (t *textWriter) targets(ts []report.Target, drop, reject float64, title string) {
	if title != "" {
		t.line(indentStep, t.st.label.Render(title))
	}
	if len(ts) == 0 && drop == 0 && reject == 0 {
		t.line(indentStep, t.st.warn.Render("no DNAT: connections are not sent to any endpoint here"))
		return
	}
	tbl := table{}
	for _, tg := range ts {
		who := plain("")
		switch {
		case !tg.Endpoint:
			who = cell{"not a current endpoint", t.st.bad}
			if tg.Pod != "" {
				who.text += " (pod " + tg.Pod + ")"
			}
		case tg.Pod != "" && tg.Node != "":
			who = plain("pod " + tg.Pod + " on " + tg.Node)
		case tg.Pod != "":
			who = plain("pod " + tg.Pod)
		case tg.Node != "":
			who = plain("on " + tg.Node)
		}
		via := plain("")
		if tg.Chain != "" {
			via = cell{"via " + tg.Chain, t.st.label}
		}
		masq := plain("")
		if tg.Masquerade {
			masq = cell{"masquerade (SNAT)", t.st.warn}
		}
		tbl.rows = append(tbl.rows, []cell{
			plain("→"), {percent(tg.Probability), t.st.pct},
			{hostPort(tg.IP, tg.Port), t.st.addr}, who, via, masq,
		})
	}
	if drop > 0 {
		tbl.rows = append(tbl.rows, []cell{{"✗", t.st.bad}, {percent(drop), t.st.pct}, {"dropped", t.st.bad}})
	}
	if reject > 0 {
		tbl.rows = append(tbl.rows, []cell{{"✗", t.st.bad}, {percent(reject), t.st.pct}, {"rejected", t.st.bad}})
	}
	tbl.rightAlign = map[int]bool{1: true}
	tbl.write(t, indentStep)
}

func (t *textWriter) masquerade(m report.Masquerade) {
	var who []string
	switch {
	case m.All:
		who = append(who, "all sources (masqueradeAll)")
	default:
		if m.OffCluster {
			who = append(who, "off-cluster sources")
		}
		if m.Hairpin {
			who = append(who, "hairpin (an endpoint reaching itself)")
		}
	}
	label := t.st.label.Render("masquerade (SNAT): ")
	if len(who) == 0 {
		t.line(indentStep, label, "none")
		return
	}
	t.line(indentStep, label, t.st.warn.Render(strings.Join(who, ", ")))
}

// expected shows what the API objects ask for, when the rules do otherwise
// or when there are no rules to show.
func (t *textWriter) expected(e *report.Entry) {
	x := e.Expected
	if x == nil {
		return
	}
	pod := !sameSet(x.Endpoints, targetAddrs(e.Targets))
	off := !sameSet(x.OffClusterEndpoints, targetAddrs(e.OffClusterTargets))
	chains := len(e.Steps) == 0 && len(x.Chains) > 0
	if !pod && !off && !chains {
		return
	}
	t.line(indentStep, t.st.warn.Render("expected from the API objects:"))
	if pod {
		t.line(indentStep+2, t.st.label.Render("endpoints: "), t.list(x.Endpoints))
	}
	if off {
		t.line(indentStep+2, t.st.label.Render("off-cluster endpoints: "), t.list(x.OffClusterEndpoints))
	}
	if chains {
		t.line(indentStep+2, t.st.label.Render("chains: "), strings.Join(x.Chains, ", "))
	}
}

func (t *textWriter) list(addrs []string) string {
	if len(addrs) == 0 {
		return "none"
	}
	return t.addrs(addrs)
}

func (t *textWriter) findings(fs []report.Finding) {
	if len(fs) == 0 {
		return
	}
	t.blank()
	t.line(0, t.st.heading.Render("Findings"))
	body := indentField + severityWidth + 2
	for i, f := range fs {
		if i > 0 {
			t.blank()
		}
		sev := strings.ToUpper(string(f.Severity))
		head := []string{t.st.sev(f.Severity).Render(sev), pad(sev, severityWidth+2), t.st.id.Render(f.ID)}
		for _, where := range []string{f.Node, f.Port, f.Entry} {
			if where != "" {
				head = append(head, t.st.label.Render(" · "), where)
			}
		}
		if f.Node == "" {
			head = append(head, t.st.label.Render(" · service"))
		}
		t.line(indentField, head...)
		msg := f.Message
		if msg == "" {
			msg = report.Catalog[f.ID].Title
		}
		for _, l := range splitLines(msg) {
			t.line(body, l)
		}
		for _, ev := range f.Evidence {
			for _, l := range splitLines(ev) {
				t.line(body+2, t.st.rule.Render(l))
			}
		}
		if f.Hint != "" {
			for i, l := range splitLines(f.Hint) {
				label := t.st.label.Render("hint: ")
				if i > 0 {
					label = "      "
				}
				t.line(body, label, l)
			}
		}
	}
}

func (t *textWriter) summary(fs []report.Finding, nodes int) {
	s := t.counts(fs, true)
	on := ""
	if nodes > 0 {
		on = " on " + plural(nodes, "node", "nodes")
	}
	if s == "" {
		t.line(0, t.st.good.Render("no problems found"+on))
		return
	}
	t.line(0, s, on)
}

// counts summarises findings as "2 errors, 1 warning". Info findings count
// only when withInfo is set; if there are no errors or warnings, it says "no
// problems found" (withInfo) or returns "".
func (t *textWriter) counts(fs []report.Finding, withInfo bool) string {
	n := map[report.Severity]int{}
	for _, f := range fs {
		n[f.Severity]++
	}
	var parts []string
	if c := n[report.SeverityError]; c > 0 {
		parts = append(parts, t.st.sev(report.SeverityError).Render(plural(c, "error", "errors")))
	}
	if c := n[report.SeverityWarning]; c > 0 {
		parts = append(parts, t.st.sev(report.SeverityWarning).Render(plural(c, "warning", "warnings")))
	}
	if len(parts) == 0 {
		if !withInfo {
			return ""
		}
		parts = append(parts, t.st.good.Render("no problems found"))
	}
	if c := n[report.SeverityInfo]; c > 0 && withInfo {
		parts = append(parts, t.st.sev(report.SeverityInfo).Render(plural(c, "info", "info")))
	}
	return strings.Join(parts, ", ")
}

// allFindings returns the report's findings, plus any node finding missing
// from the top-level list, sorted by severity, ID, node, port and entry.
func allFindings(r *report.Report) []report.Finding {
	seen := map[string]bool{}
	var out []report.Finding
	add := func(f report.Finding) {
		k := findingKey(f)
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, f)
	}
	for _, f := range r.Findings {
		add(f)
	}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.Node == "" {
				f.Node = n.Name
			}
			add(f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return ra < rb
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Entry < b.Entry
	})
	return out
}

func findingKey(f report.Finding) string {
	return strings.Join(append([]string{f.ID, string(f.Severity), f.Node, f.Port, f.Entry, f.Message, f.Hint}, f.Evidence...), "\x00")
}

// sameOutcome reports whether off-cluster clients get what pod clients get,
// in which case the off-cluster outcome is not repeated.
func sameOutcome(e *report.Entry) bool {
	if !near(e.DropProbability, e.OffClusterDropProbability) || !near(e.RejectProbability, e.OffClusterRejectProbability) {
		return false
	}
	if len(e.Targets) != len(e.OffClusterTargets) {
		return false
	}
	for i := range e.Targets {
		a, b := e.Targets[i], e.OffClusterTargets[i]
		if a.IP != b.IP || a.Port != b.Port || !near(a.Probability, b.Probability) || a.Masquerade != b.Masquerade {
			return false
		}
	}
	return true
}

func targetAddrs(ts []report.Target) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, hostPort(t.IP, t.Port))
	}
	return out
}

// sameSet compares two lists of addresses as sets.
func sameSet(a, b []string) bool {
	set := map[string]bool{}
	for _, s := range a {
		set[s] = true
	}
	other := map[string]bool{}
	for _, s := range b {
		if !set[s] {
			return false
		}
		other[s] = true
	}
	return len(set) == len(other)
}

func tableChain(table, chain string) string {
	if table == "" {
		return chain
	}
	return table + "/" + chain
}

// hostPort joins an address and a port, with brackets for IPv6.
func hostPort(ip string, port int32) string {
	if port == 0 {
		return ip
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

// compareIP orders addresses numerically when they parse, else as strings.
func compareIP(a, b string) int {
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return pa.Compare(pb)
	}
	return strings.Compare(a, b)
}

// percent formats a probability (0 to 1) as a percentage with at most one
// decimal: 0.5 -> "50%", 1/3 -> "33.3%", 0.0001 -> "<0.1%".
func percent(p float64) string {
	if p <= 0 || math.IsNaN(p) {
		return "0%"
	}
	v := math.Round(p*1000) / 10
	if v == 0 {
		return "<0.1%"
	}
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "%"
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
func isOne(p float64) bool   { return near(p, 1) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// pad returns the spaces that fill s (unstyled) up to width, at least one.
func pad(s string, width int) string {
	n := width - len([]rune(s))
	if n < 1 {
		n = 1
	}
	return strings.Repeat(" ", n)
}

// splitLines splits a text into lines, dropping one trailing newline, and
// returns nothing for the empty string.
func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
