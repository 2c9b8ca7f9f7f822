package render

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// Trace source kinds and verdicts, as the schema documents them.
const (
	sourcePod  = "pod"
	sourceNode = "node"
	sourceIP   = "ip"

	verdictAccept = "ACCEPT"
	verdictDrop   = "DROP"
	verdictReject = "REJECT"
)

// trace writes the traced connection (--from): who sends it and where it
// enters, each branch's outcome at a glance, the numbered narrative, the
// rules every connection meets, then each branch in detail. ct is the
// conntrack table of the traced node, nil when it was not collected.
func (t *textWriter) trace(tr *report.Trace, ct *report.Conntrack) {
	t.line(0, t.traceTitle(tr)...)
	if to := t.traceEntry(tr); len(to) > 0 {
		t.line(indentField, to...)
	}
	t.outcomes(tr)

	if len(tr.Narrative) > 0 {
		t.blank()
		t.narrative(tr.Narrative)
	}
	if len(tr.Steps) > 0 {
		t.blank()
		t.line(indentField, t.st.subhead.Render("Rules every connection meets"))
		t.steps(tr.Steps, indentEntry, 1)
	}
	for i := range tr.Branches {
		t.blank()
		t.branch(tr, i, len(tr.Steps)+1, ct)
	}
}

// traceTitle is "Trace · from pod default/client (10.1.236.141) on worker-2
// · PREROUTING".
func (t *textWriter) traceTitle(tr *report.Trace) []string {
	sep := t.st.label.Render(" · ")
	parts := []string{t.st.heading.Render("Trace"), sep, t.st.label.Render("from ")}
	src := tr.Source
	ip := func() []string {
		if src.IP == "" {
			return nil
		}
		return []string{" (", t.st.addr.Render(src.IP), ")"}
	}
	switch src.Kind {
	case sourcePod:
		parts = append(parts, "pod ")
		if name := nsName(src.Namespace, src.Name); name != "" {
			parts = append(parts, t.st.title.Render(name))
			parts = append(parts, ip()...)
		} else {
			parts = append(parts, t.st.addr.Render(orQuestion(src.IP)))
		}
		if tr.Node != "" {
			parts = append(parts, t.st.label.Render(" on "), t.st.title.Render(tr.Node))
		}
	case sourceNode:
		name := src.Name
		if name == "" {
			name = tr.Node
		}
		if name == "" {
			parts = append(parts, "node ", t.st.addr.Render(orQuestion(src.IP)))
		} else {
			parts = append(parts, "node ", t.st.title.Render(name))
			parts = append(parts, ip()...)
		}
	default: // ip: a client outside the cluster
		kind := "off-cluster client "
		if src.Kind != sourceIP && src.Kind != "" {
			kind = src.Kind + " "
		}
		parts = append(parts, kind, t.st.addr.Render(orQuestion(src.IP)))
		if tr.Node != "" {
			parts = append(parts, t.st.label.Render(" via "), t.st.title.Render(tr.Node))
		}
	}
	if tr.Hook != "" {
		parts = append(parts, sep, tr.Hook)
	}
	return parts
}

// traceEntry is "to ClusterIP 10.99.64.233:9999/TCP · enters by calie8f03783e20".
func (t *textWriter) traceEntry(tr *report.Trace) []string {
	var parts []string
	if tr.Entry != "" {
		kind, addr, ok := strings.Cut(tr.Entry, " ")
		if !ok {
			kind, addr = "", tr.Entry
		}
		parts = append(parts, t.st.label.Render("to "))
		if kind != "" {
			parts = append(parts, kind+" ")
		}
		parts = append(parts, t.st.addr.Render(addr))
		if tr.Protocol != "" {
			parts = append(parts, "/"+tr.Protocol)
		}
	} else if tr.Protocol != "" {
		parts = append(parts, t.st.label.Render("protocol "), tr.Protocol)
	}
	if tr.Source.Interface != "" {
		if len(parts) > 0 {
			parts = append(parts, t.st.label.Render(" · "))
		}
		parts = append(parts, t.st.label.Render("enters by "), tr.Source.Interface)
	}
	return parts
}

// outcomes is the answer at a glance: one line per branch with its share,
// where it goes, whether it is source-NATed and how it leaves the node.
func (t *textWriter) outcomes(tr *report.Trace) {
	if len(tr.Branches) == 0 {
		t.line(indentField, t.st.bad.Render("no outcome: the trace found no path for the connection"))
		return
	}
	tbl := table{rightAlign: map[int]bool{1: true}}
	for _, b := range tr.Branches {
		row := []cell{plain("→"), {percent(b.Probability), t.st.pct}}
		switch v := strings.ToUpper(b.Verdict); {
		case v == verdictDrop:
			row[0].style = t.st.bad
			row[0].text = "✗"
			row = append(row, cell{"dropped", t.st.bad})
		case v == verdictReject:
			row[0].style = t.st.bad
			row[0].text = "✗"
			row = append(row, cell{"rejected", t.st.bad})
		case b.DNAT != nil:
			row = append(row, cell{hostPort(b.DNAT.IP, b.DNAT.Port), t.st.addr})
		default:
			row = append(row, cell{"not DNATed", t.st.warn})
		}
		if !isAccept(b.Verdict) {
			tbl.rows = append(tbl.rows, row)
			continue
		}
		row = append(row, plain(deliveryWho(b.DeliveredTo)))
		if b.SNAT != nil {
			row = append(row, cell{"SNAT → " + orQuestion(b.SNAT.IP), t.st.warn})
		} else {
			row = append(row, cell{"no SNAT", t.st.label})
		}
		row = append(row, cell{egressBrief(b.Egress), t.st.label})
		tbl.rows = append(tbl.rows, row)
	}
	tbl.write(t, indentField)
}

// narrativeNumber matches a number the analysis already put in front of a
// narrative sentence ("3. ..."): the renderer numbers them itself.
var narrativeNumber = regexp.MustCompile(`^\s*(\d+)[.)]\s+`)

// narrative writes the explanation as numbered sentences, wrapped to the
// width with a hanging indent.
func (t *textWriter) narrative(lines []string) {
	numWidth := len(strconv.Itoa(len(lines)))
	for i, l := range lines {
		if m := narrativeNumber.FindStringSubmatch(l); m != nil && m[1] == strconv.Itoa(i+1) {
			l = l[len(m[0]):]
		}
		num := fmt.Sprintf("%*d.", numWidth, i+1)
		body := indentField + len(num) + 1
		wrapped := wrapProse(l, t.width-body)
		if len(wrapped) == 0 {
			t.line(indentField, t.st.num.Render(num))
			continue
		}
		for j, w := range wrapped {
			if j == 0 {
				t.line(indentField, t.st.num.Render(num), " ", w)
			} else {
				t.line(body, w)
			}
		}
	}
}

// branch writes one outcome of the traced connection: its share and
// verdict, the NATs, the route out, who receives it, its own rules (numbered
// on from the shared ones) and the conntrack entries that took it.
func (t *textWriter) branch(tr *report.Trace, i, firstStep int, ct *report.Conntrack) {
	b := &tr.Branches[i]
	sep := t.st.label.Render(" · ")
	head := []string{t.st.subhead.Render(fmt.Sprintf("Branch %d of %d", i+1, len(tr.Branches)))}
	head = append(head, sep, t.st.pct.Render(percent(b.Probability)))
	if b.Verdict != "" {
		style := t.st.good
		if !isAccept(b.Verdict) {
			style = t.st.bad
		}
		head = append(head, sep, style.Render(b.Verdict))
	}
	t.line(indentField, head...)

	accept := isAccept(b.Verdict)
	field := func(label, value string) { t.fieldAt(indentEntry, label, value) }
	cont := func(parts ...string) { t.line(indentEntry+labelWidth, parts...) }
	switch strings.ToUpper(b.Verdict) {
	case verdictDrop:
		t.line(indentEntry, t.st.bad.Render("dropped: the packet is discarded and the client times out"))
	case verdictReject:
		t.line(indentEntry, t.st.bad.Render("rejected: the client gets an error at once (connection refused)"))
	}

	switch {
	case b.DNAT != nil:
		field("DNAT", "→ "+t.st.addr.Render(hostPort(b.DNAT.IP, b.DNAT.Port)))
	case accept:
		field("DNAT", t.st.warn.Render("none: the destination stays the service address"))
	}

	switch {
	case b.SNAT != nil:
		to := t.st.addr.Render(b.SNAT.IP)
		if b.SNAT.IP == "" {
			to = "the source address of the route"
		}
		v := []string{t.st.warn.Render("→ "), to}
		if by := snatBy(b.SNAT.By); by != "" {
			v = append(v, t.st.warn.Render(" (by "+by+")"))
		}
		field("SNAT", strings.Join(v, ""))
		for _, l := range splitLines(b.SNAT.Rule) {
			cont(t.st.rule.Render(l))
		}
	case accept:
		v := "none"
		if tr.Source.IP != "" {
			v += t.st.label.Render(" · the endpoint sees the real source ") + t.st.addr.Render(tr.Source.IP)
		}
		field("SNAT", v)
	}

	switch {
	case b.Egress != nil:
		t.egress(b.Egress)
	case accept:
		field("Egress", t.st.warn.Render("unknown: no route for the destination in the node data"))
	}

	switch {
	case b.DeliveredTo != nil:
		field("Delivered to", orDashText(deliveryText(b.DeliveredTo)))
	case accept:
		field("Delivered to", t.st.warn.Render("unknown: the destination is no known pod or node"))
	}

	if len(b.Steps) > 0 {
		t.line(indentEntry, t.st.label.Render("rules of this branch"))
		t.steps(b.Steps, indentStep, firstStep)
	}

	switch {
	case len(b.Flows) > 0:
		where := "conntrack"
		if tr.Node != "" {
			where += " on " + tr.Node
		}
		t.line(indentEntry, t.st.label.Render(fmt.Sprintf("%s: %s", where, plural(len(b.Flows), "connection took this branch", "connections took this branch"))))
		for _, f := range b.Flows {
			for _, l := range splitLines(f) {
				t.line(indentStep, t.st.rule.Render(l))
			}
		}
	case ct != nil:
		t.line(indentEntry, t.st.label.Render("conntrack on "+ct.Node+": no connection took this branch"))
	}
}

// egress writes how the packet leaves the node: the interface and what it
// is, the gateway and the node behind it, then the matched route verbatim.
func (t *textWriter) egress(e *report.Egress) {
	var parts []string
	if e.Interface != "" {
		parts = append(parts, e.Interface)
	}
	if d := egressKind(e); d != "" {
		parts = append(parts, d)
	}
	if e.Gateway != "" {
		parts = append(parts, "via "+t.st.addr.Render(e.Gateway))
	}
	if e.Node != "" {
		parts = append(parts, "to node "+e.Node)
	}
	if e.Local {
		parts = append(parts, "local: the destination is this node")
	}
	value := strings.Join(parts, t.st.label.Render(" · "))
	if value == "" {
		value = "-"
	}
	t.fieldAt(indentEntry, "Egress", value)
	for _, l := range splitLines(e.Route) {
		t.line(indentEntry+labelWidth, t.st.label.Render("route "), t.st.rule.Render(l))
	}
	for _, l := range splitLines(e.Underlay) {
		t.line(indentEntry+labelWidth, t.st.label.Render("outer packet "), t.st.rule.Render(l))
	}
	if e.Source != "" && !strings.Contains(e.Route, "src "+e.Source) {
		t.line(indentEntry+labelWidth, t.st.label.Render("route source "), t.st.addr.Render(e.Source))
	}
}

// egressKind describes the egress interface, naming the tunnel once.
func egressKind(e *report.Egress) string {
	d := e.Kind
	if e.Tunnel != "" && !strings.Contains(strings.ToLower(d), strings.ToLower(e.Tunnel)) {
		tun := e.Tunnel
		if !strings.Contains(strings.ToLower(tun), "tunnel") {
			tun += " tunnel"
		}
		if d == "" {
			d = tun
		} else {
			d += ", " + tun
		}
	}
	return d
}

// egressBrief is the egress in a few words: "via tunl0 to worker-1".
func egressBrief(e *report.Egress) string {
	if e == nil {
		return ""
	}
	if e.Local {
		return "local to the node"
	}
	s := ""
	if e.Interface != "" {
		s = "via " + e.Interface
	}
	if e.Node != "" {
		s = strings.TrimSpace(s + " to " + e.Node)
	}
	return s
}

// deliveryWho is "pod default/nginx1 on worker-1", or "node worker-1".
func deliveryWho(d *report.Delivery) string {
	switch {
	case d == nil:
		return ""
	case d.Pod != "" && d.Node != "":
		return "pod " + nsName(d.Namespace, d.Pod) + " on " + d.Node
	case d.Pod != "":
		return "pod " + nsName(d.Namespace, d.Pod)
	case d.Node != "":
		return "node " + d.Node
	}
	return ""
}

// deliveryText is "pod default/nginx1 on worker-1 · by calif67c1668c34 on
// bridge cni0".
func deliveryText(d *report.Delivery) string {
	if d == nil {
		return ""
	}
	var parts []string
	if who := deliveryWho(d); who != "" {
		parts = append(parts, who)
	}
	switch {
	case d.Interface != "" && d.Bridge != "":
		parts = append(parts, "by "+d.Interface+" on bridge "+d.Bridge)
	case d.Interface != "":
		parts = append(parts, "by "+d.Interface)
	case d.Bridge != "":
		parts = append(parts, "on bridge "+d.Bridge)
	}
	return strings.Join(parts, " · ")
}

// snatBy says who source-NATs.
func snatBy(by string) string {
	switch by {
	case "cni":
		return "a CNI masquerade rule, not kube-proxy"
	default:
		return by
	}
}

// traceConntrack returns the conntrack table of the traced node, if any.
func traceConntrack(r *report.Report) *report.Conntrack {
	for i := range r.Conntrack {
		if r.Conntrack[i].Node == r.Trace.Node {
			return &r.Conntrack[i]
		}
	}
	return nil
}

func isAccept(verdict string) bool {
	return verdict == "" || strings.EqualFold(verdict, verdictAccept)
}

func nsName(ns, name string) string {
	if ns == "" || name == "" {
		return name
	}
	return ns + "/" + name
}

func orQuestion(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func orDashText(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// minWrap is the narrowest text column worth wrapping to.
const minWrap = 30

// wrapProse splits a paragraph into lines of at most width columns, breaking
// at spaces but never inside a `quoted span`: quoted evidence (a rule, a
// route) stays whole even when it is wider than the line. With width below
// minWrap it only splits at the newlines already there.
func wrapProse(s string, width int) []string {
	var out []string
	for _, para := range splitLines(s) {
		if width < minWrap {
			out = append(out, para)
			continue
		}
		var b strings.Builder
		n := 0
		for _, w := range proseWords(para) {
			ww := lipgloss.Width(w)
			if n > 0 && n+1+ww > width {
				out = append(out, b.String())
				b.Reset()
				n = 0
			}
			if n > 0 {
				b.WriteByte(' ')
				n++
			}
			b.WriteString(w)
			n += ww
		}
		out = append(out, b.String())
	}
	return out
}

// proseWords splits text at spaces, keeping each `quoted span` in one piece.
func proseWords(s string) []string {
	var words []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '`':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}
