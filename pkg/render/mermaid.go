package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// Mermaid writes the explained path as a Mermaid flowchart, the same graph
// as DOT: paste it into a ```mermaid block of a Markdown page (GitHub,
// GitLab and most wikis draw it) or into https://mermaid.live.
func Mermaid(w io.Writer, r *report.Report) error {
	if r == nil {
		return errNilReport
	}
	g := buildGraph(r)
	var b strings.Builder
	title, err := json.Marshal(g.title)
	if err != nil {
		return fmt.Errorf("encode title: %w", err)
	}
	// The title is a YAML double-quoted string in the front matter (JSON
	// strings are valid YAML).
	fmt.Fprintf(&b, "---\ntitle: %s\n---\n", title)
	b.WriteString("flowchart LR\n")
	for _, c := range g.clusters {
		fmt.Fprintf(&b, "  subgraph %s[\"%s\"]\n", c.id, mermaidEscape(c.label))
		for _, n := range c.nodes {
			writeMermaidNode(&b, "    ", n)
		}
		b.WriteString("  end\n")
	}
	for _, n := range g.nodes {
		writeMermaidNode(&b, "  ", n)
	}
	var bad []string
	for i, e := range g.edges {
		arrow := "-->"
		switch e.kind {
		case edgeAlt:
			arrow = "-.->"
		case edgeBad:
			bad = append(bad, fmt.Sprint(i))
		}
		if e.label != "" {
			fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", e.from, arrow, mermaidEscape(e.label), e.to)
		} else {
			fmt.Fprintf(&b, "  %s %s %s\n", e.from, arrow, e.to)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(&b, "  linkStyle %s stroke:#c5221f,color:#c5221f\n", strings.Join(bad, ","))
	}
	byKind := map[nodeKind][]string{}
	for _, c := range g.clusters {
		for _, n := range c.nodes {
			byKind[n.kind] = append(byKind[n.kind], n.id)
		}
	}
	for _, n := range g.nodes {
		byKind[n.kind] = append(byKind[n.kind], n.id)
	}
	for k := kindSource; k <= kindNote; k++ {
		c := dotColors[k]
		fmt.Fprintf(&b, "  classDef %s fill:%s,stroke:%s,color:#202124\n", mermaidClass[k], c[0], c[1])
	}
	for k := kindSource; k <= kindNote; k++ {
		if ids := byKind[k]; len(ids) > 0 {
			fmt.Fprintf(&b, "  class %s %s\n", strings.Join(ids, ","), mermaidClass[k])
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

var mermaidClass = map[nodeKind]string{
	kindSource:   "source",
	kindEntry:    "entry",
	kindChain:    "chain",
	kindEndpoint: "endpoint",
	kindRoute:    "route",
	kindPod:      "pod",
	kindBad:      "bad",
	kindNote:     "note",
}

func writeMermaidNode(b *strings.Builder, indent string, n *graphNode) {
	esc := make([]string, len(n.lines))
	for i, l := range n.lines {
		esc[i] = mermaidEscape(l)
	}
	// IDs are n1, n2, ...: never a Mermaid keyword such as "end".
	fmt.Fprintf(b, "%s%s[\"%s\"]\n", indent, n.id, strings.Join(esc, "<br/>"))
}

// mermaidEscape escapes s for a quoted Mermaid label. Inside quotes,
// Mermaid reads #name; and #123; as entity codes and the label as HTML, so
// '#' itself, the double quote, '<', '>' and '&' are written as entity
// codes; so are a backquote (a label starting with one would be read as
// Markdown) and '|' (it ends an edge label). Slashes and colons (IPv6 addresses) are plain text.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '#':
			b.WriteString("#35;")
		case '"':
			b.WriteString("#quot;")
		case '<':
			b.WriteString("#lt;")
		case '>':
			b.WriteString("#gt;")
		case '&':
			b.WriteString("#amp;")
		case '`':
			b.WriteString("#96;")
		case '|':
			b.WriteString("#124;")
		case '\n':
			b.WriteString("<br/>")
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
