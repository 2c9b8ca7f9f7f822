package render

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// dash marks an empty cell of the conntrack tables.
const dash = "—"

// dns writes how clients find the service by name and whether the cluster
// DNS service's own path works; its problems are in the error colour.
func (t *textWriter) dns(d *report.DNS) {
	t.blank()
	status := t.st.good.Render("healthy")
	if !d.Healthy {
		status = t.st.bad.Render("not healthy")
		if n := len(d.Problems); n > 0 {
			status = t.st.bad.Render("not healthy: " + plural(n, "problem", "problems"))
		}
	}
	t.line(0, t.st.heading.Render("DNS"), t.st.label.Render(" · "), status)

	if len(d.Names) == 0 {
		t.field("Names", t.st.label.Render("none"))
	} else {
		t.field("Names", t.addrs(d.Names))
	}

	var svc []string
	if d.Service != "" {
		svc = append(svc, d.Service)
	}
	if d.ClusterIP != "" {
		svc = append(svc, t.st.addr.Render(d.ClusterIP))
	}
	if len(svc) == 0 {
		t.field("Cluster DNS", t.st.label.Render("not found in the data"))
	} else {
		t.field("Cluster DNS", strings.Join(svc, t.st.label.Render(" · ")))
	}

	problems := d.Problems
	if !d.Healthy && len(problems) == 0 {
		problems = []string{"the cluster DNS service's path has errors (see " + report.DNSPathBroken + " below)"}
	}
	label := "Problems"
	for _, p := range problems {
		for _, l := range splitLines(p) {
			t.field(label, t.st.bad.Render(l))
			label = ""
		}
	}
}

// conntrack writes the connections the node's conntrack table holds for
// the service, then the observed spread over destinations next to the
// share the rules give each.
func (t *textWriter) conntrack(c *report.Conntrack) {
	sep := t.st.label.Render(" · ")
	head := []string{t.st.label.Render("Conntrack")}
	if c.Node != "" {
		head = append(head, t.st.label.Render(" "), t.st.heading.Render(c.Node))
	}
	head = append(head, sep, plural(len(c.Flows), "connection", "connections")+" to the service")
	var unreplied, stale, unexpected int
	for _, f := range c.Flows {
		if f.Unreplied {
			unreplied++
		}
		if f.DNATTo != nil && !f.Endpoint {
			stale++
		}
		if f.SNATTo != nil && f.ExpectedSNAT == "none" {
			unexpected++
		}
	}
	if unreplied > 0 {
		head = append(head, sep, t.st.bad.Render(fmt.Sprintf("%d unreplied", unreplied)))
	}
	if stale > 0 {
		head = append(head, sep, t.st.warn.Render(fmt.Sprintf("%d to no current endpoint", stale)))
	}
	if unexpected > 0 {
		head = append(head, sep, t.st.warn.Render(fmt.Sprintf("%d unexpected SNAT", unexpected)))
	}
	t.line(0, head...)

	if len(c.Flows) == 0 {
		t.line(indentField, t.st.label.Render("no connection to the service in the table"))
	} else {
		tbl := table{}
		tbl.add(t.st.label, "PROTO", "STATE", "SOURCE", "", "DESTINATION", "DNAT TO", "SNAT TO", "FLAGS", "ENDPOINT")
		for _, f := range c.Flows {
			dnat := cell{dash, t.st.label}
			endpoint := cell{dash, t.st.label}
			if f.DNATTo != nil {
				dnat = cell{hostPort(f.DNATTo.IP, f.DNATTo.Port), t.st.addr}
				endpoint = yesNo(f.Endpoint, t.st.good, t.st.bad)
			}
			tbl.rows = append(tbl.rows, []cell{
				orEmDash(f.Protocol), orEmDash(f.State),
				{hostPort(f.Src, f.SPort), t.st.addr}, plain("→"), {hostPort(f.Dst, f.DPort), t.st.addr},
				dnat, t.snatCell(f), t.flagsCell(f), endpoint,
			})
		}
		tbl.write(t, indentField)
	}

	if len(c.ByEndpoint) == 0 {
		return
	}
	t.blank()
	t.line(indentField, t.st.label.Render("by destination · observed here vs expected from the rules"))
	tbl := table{rightAlign: map[int]bool{2: true, 3: true, 4: true, 5: true}}
	tbl.add(t.st.label, "DESTINATION", "POD", "FLOWS", "UNREPLIED", "OBSERVED", "EXPECTED")
	for _, e := range c.ByEndpoint {
		unrepl := plain(strconv.Itoa(e.Unreplied))
		if e.Unreplied > 0 {
			unrepl.style = t.st.bad
		}
		var notes []string
		note := t.st.warn
		if e.Flows > 0 && e.Expected <= 0 {
			notes = append(notes, "the rules no longer send connections here")
		}
		if e.Flows > 0 && e.Unreplied >= e.Flows {
			notes = append(notes, "no connection got a reply")
			note = t.st.bad
		}
		tbl.rows = append(tbl.rows, []cell{
			{hostPort(e.IP, e.Port), t.st.addr}, orEmDash(e.Pod),
			plain(strconv.Itoa(e.Flows)), unrepl,
			{percent(e.Observed), t.st.pct}, plain(percent(e.Expected)),
			{strings.Join(notes, "; "), note},
		})
	}
	tbl.write(t, indentField)
}

// snatCell is the source a flow's endpoint saw, when it was rewritten, with
// what the rules say: "(kube-proxy)" as expected, "(unexpected)" when they
// say no SNAT, "— (kube-proxy expected)" when an expected SNAT is absent.
func (t *textWriter) snatCell(f report.Flow) cell {
	switch {
	case f.SNATTo != nil:
		s := hostPort(f.SNATTo.IP, f.SNATTo.Port)
		switch f.ExpectedSNAT {
		case "none":
			return cell{s + " (unexpected)", t.st.bad}
		case "kube-proxy", "cni":
			return cell{s + " (" + f.ExpectedSNAT + ")", t.st.warn}
		}
		return cell{s, t.st.warn}
	case f.ExpectedSNAT == "kube-proxy" || f.ExpectedSNAT == "cni":
		return cell{dash + " (" + f.ExpectedSNAT + " expected)", t.st.warn}
	}
	return cell{dash, t.st.label}
}

func (t *textWriter) flagsCell(f report.Flow) cell {
	switch {
	case f.Unreplied && f.Assured:
		return cell{"ASSURED UNREPLIED", t.st.bad}
	case f.Unreplied:
		return cell{"UNREPLIED", t.st.bad}
	case f.Assured:
		return cell{"ASSURED", t.st.good}
	}
	return cell{dash, t.st.label}
}

func orEmDash(s string) cell {
	if s == "" {
		return plain(dash)
	}
	return plain(s)
}

// addresses writes the legend of the report's addresses, sorted by
// address so that one is quick to look up.
func (t *textWriter) addresses(as []report.AddressLabel) {
	if len(as) == 0 {
		return
	}
	as = append([]report.AddressLabel(nil), as...)
	sort.SliceStable(as, func(i, j int) bool {
		if c := compareIP(as[i].IP, as[j].IP); c != 0 {
			return c < 0
		}
		return as[i].Kind < as[j].Kind
	})
	t.blank()
	t.line(0, t.st.heading.Render("Addresses"))
	tbl := table{}
	tbl.add(t.st.label, "ADDRESS", "KIND", "DETAIL")
	for _, a := range as {
		tbl.rows = append(tbl.rows, []cell{{a.IP, t.st.addr}, orDash(a.Kind), plain(a.Detail)})
	}
	tbl.write(t, indentField)
}
