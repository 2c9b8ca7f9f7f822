package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// DOT writes the explained path as a Graphviz digraph, left to right:
// source -> entry rule -> service chain -> endpoint chains (edges carry the
// share of new connections) -> route or tunnel -> pod. With a trace
// (--from) it draws the traced connection, else each node's entry points
// for a pod client of that node, one cluster per node. Rule lines are
// quoted whole. Render it with `dot -Tsvg -o path.svg`.
func DOT(w io.Writer, r *report.Report) error {
	if r == nil {
		return errNilReport
	}
	g := buildGraph(r)
	var b strings.Builder
	b.WriteString("// kubectl svcpath -o dot; render with: dot -Tsvg -o path.svg\n")
	b.WriteString("digraph svcpath {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, label=%s, labelloc=t, fontname=\"Helvetica\", fontsize=12, nodesep=0.3, ranksep=0.45];\n", dotQuote(g.title))
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10, color=\"#5f6368\", fillcolor=\"#ffffff\"];\n")
	b.WriteString("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#5f6368\"];\n")
	for _, c := range g.clusters {
		fmt.Fprintf(&b, "  subgraph %s {\n", dotQuote(c.id))
		fmt.Fprintf(&b, "    graph [label=%s, style=\"rounded,dashed\", color=\"#9aa0a6\"];\n", dotQuote(c.label))
		for _, n := range c.nodes {
			writeDOTNode(&b, "    ", n)
		}
		b.WriteString("  }\n")
	}
	for _, n := range g.nodes {
		writeDOTNode(&b, "  ", n)
	}
	for _, e := range g.edges {
		var attrs []string
		if e.label != "" {
			attrs = append(attrs, "label="+dotQuote(e.label))
		}
		switch e.kind {
		case edgeAlt:
			attrs = append(attrs, `style=dashed`)
		case edgeBad:
			attrs = append(attrs, `color="#c5221f"`, `fontcolor="#c5221f"`)
		}
		fmt.Fprintf(&b, "  %s -> %s", dotQuote(e.from), dotQuote(e.to))
		if len(attrs) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(attrs, ", "))
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Fill and border colours by kind of box.
var dotColors = map[nodeKind][2]string{
	kindSource:   {"#e8f0fe", "#1a73e8"},
	kindEntry:    {"#fef7e0", "#b06000"},
	kindChain:    {"#f3e8fd", "#8430ce"},
	kindEndpoint: {"#f3e8fd", "#8430ce"},
	kindRoute:    {"#e6f4ea", "#137333"},
	kindPod:      {"#e6f4ea", "#137333"},
	kindBad:      {"#fce8e6", "#c5221f"},
	kindNote:     {"#f1f3f4", "#5f6368"},
}

func writeDOTNode(b *strings.Builder, indent string, n *graphNode) {
	c := dotColors[n.kind]
	fmt.Fprintf(b, "%s%s [label=%s, fillcolor=%s, color=%s];\n", indent, dotQuote(n.id), dotLabel(n.lines), dotQuote(c[0]), dotQuote(c[1]))
}

// dotLabel joins lines into one quoted label, each line centred.
func dotLabel(lines []string) string {
	esc := make([]string, len(lines))
	for i, l := range lines {
		esc[i] = dotEscape(l)
	}
	return `"` + strings.Join(esc, `\n`) + `"`
}

// dotQuote is s as a DOT quoted string.
func dotQuote(s string) string { return `"` + dotEscape(s) + `"` }

// dotEscape escapes s for the inside of a DOT quoted string used as a
// label: a backslash would start an escape sequence (\n, \l, \N, ...), so
// it is doubled; a double quote would end the string; a line break becomes
// \n. Nothing else is special inside quotes: slashes, colons (IPv6
// addresses, host:port), braces and angle brackets are plain text.
func dotEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
