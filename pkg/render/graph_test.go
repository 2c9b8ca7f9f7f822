package render

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// walkthroughReport analyses the bundled example, as
// `kubectl svcpath default/test --snapshot examples/walkthrough [--from FROM]`
// does.
func walkthroughReport(t *testing.T, from string) *report.Report {
	t.Helper()
	snap, err := snapshot.Load("../../examples/walkthrough")
	if err != nil {
		t.Fatal(err)
	}
	r, err := analyze.Analyze(snap, analyze.Options{Namespace: "default", Name: "test", From: from})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var graphFormats = []struct {
	ext    string
	render func(io.Writer, *report.Report) error
}{
	{".dot", DOT},
	{".mmd", Mermaid},
}

// TestGraphGoldenWalkthrough pins -o dot and -o mermaid on the bundled
// example (go test ./pkg/render -update regenerates them).
func TestGraphGoldenWalkthrough(t *testing.T) {
	for _, tc := range []struct{ name, from string }{
		{"walkthrough", ""},
		{"walkthrough-from-client", "pod/client"},
		{"walkthrough-from-nginx1", "pod/nginx1"},
	} {
		r := walkthroughReport(t, tc.from)
		for _, f := range graphFormats {
			t.Run(tc.name+f.ext, func(t *testing.T) {
				var b bytes.Buffer
				if err := f.render(&b, r); err != nil {
					t.Fatal(err)
				}
				assertGolden(t, b.Bytes(), tc.name+f.ext)
			})
		}
	}
}

// TestGraphContent checks the path the walkthrough graphs draw, whatever
// the layout: each part of the path is there and linked in order.
func TestGraphContent(t *testing.T) {
	g := buildGraph(walkthroughReport(t, "pod/client"))
	label := map[string]string{}
	for _, n := range allNodes(g) {
		label[n.id] = strings.Join(n.lines, "\n")
	}
	find := func(sub string) string {
		t.Helper()
		var ids []string
		for id, l := range label {
			if strings.Contains(l, sub) {
				ids = append(ids, id)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("want one box with %q, got %v", sub, ids)
		}
		return ids[0]
	}
	edge := func(from, to, lbl string) {
		t.Helper()
		for _, e := range g.edges {
			if e.from == from && e.to == to && e.label == lbl {
				return
			}
		}
		t.Errorf("no edge %s -> %s labelled %q (%q -> %q)", from, to, lbl, label[from], label[to])
	}
	src := find("pod default/client (10.1.236.141) on worker-2")
	entry := find(`--comment "default/test: cluster IP"`)
	svc := find("KUBE-SVC-IOIC7CRUMQYLZ32S\nnat")
	sep1 := find("DNAT → 10.1.139.84:80")
	sep2 := find("DNAT → 10.1.139.93:80")
	tunnel := find("tunl0 · IPIP tunnel")
	nginx1 := find("pod default/nginx1 on worker-1")
	nginx2 := find("pod default/nginx2 on worker-1")
	edge(src, entry, "PREROUTING")
	edge(entry, svc, "")
	edge(svc, sep1, "50%")
	edge(svc, sep2, "50%")
	edge(sep1, tunnel, "no SNAT")
	edge(sep2, tunnel, "no SNAT")
	edge(tunnel, nginx1, "")
	edge(tunnel, nginx2, "")
	if !strings.Contains(label[tunnel], "route 10.1.139.64/26 via 192.168.2.2 dev tunl0 proto bird onlink") {
		t.Errorf("the tunnel box does not quote the route: %q", label[tunnel])
	}

	// Hairpin: nginx1 balanced to itself is masqueraded by kube-proxy.
	g = buildGraph(walkthroughReport(t, "pod/nginx1"))
	var snat []string
	for _, e := range g.edges {
		if strings.HasPrefix(e.label, "SNAT") {
			snat = append(snat, e.label)
		}
	}
	if len(snat) != 1 || snat[0] != "SNAT → 192.168.2.2 (kube-proxy)" {
		t.Errorf("hairpin SNAT edges = %q", snat)
	}
}

func allNodes(g *graph) []*graphNode {
	out := append([]*graphNode(nil), g.nodes...)
	for _, c := range g.clusters {
		out = append(out, c.nodes...)
	}
	return out
}

// escapingReport has what labels must survive: double quotes and a
// backslash in a rule, IPv6 addresses (colons, brackets), slashes, '#',
// '<', '>', '&', '|' and a backquote.
func escapingReport() *report.Report {
	rule := `-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment "shop/web: \"cluster\" IP \\ <x> & #1 | ` + "`q`" + `" -m tcp --dport 80 -j KUBE-SVC-ABC`
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{Namespace: "shop", Name: "web", Type: "ClusterIP", ClusterIPs: []string{"fd00:10:96::a"}},
		Nodes: []report.Node{{
			Name: "node-a", Mode: "iptables",
			Ports: []report.Port{{Port: 80, Protocol: "TCP", Family: "IPv6", Entries: []report.Entry{{
				Kind: report.EntryClusterIP, IP: "fd00:10:96::a", Port: 80,
				Targets: []report.Target{
					{IP: "fd00:10:244::5", Port: 8080, Probability: 2.0 / 3, Pod: "web-1", Node: "node-a", Endpoint: true, Chain: "KUBE-SEP-ONE"},
					{IP: "fd00:10:244::9", Port: 8080, Probability: 1.0 / 3, Pod: "web-old", Endpoint: false, Chain: "KUBE-SEP-TWO"},
				},
				OffClusterTargets: []report.Target{
					{IP: "fd00:10:244::5", Port: 8080, Probability: 1, Pod: "web-1", Node: "node-a", Endpoint: true, Chain: "KUBE-SEP-ONE", Masquerade: true},
				},
				Masquerade: report.Masquerade{OffCluster: true},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-SERVICES", Rule: rule, Action: "jump", Probability: 1},
					{Table: "nat", Chain: "KUBE-SVC-ABC", Rule: `-A KUBE-SVC-ABC -m statistic --mode random --probability 0.66666666667 -j KUBE-SEP-ONE`, Action: "jump", Probability: 2.0 / 3},
					{Table: "nat", Chain: "KUBE-SEP-ONE", Rule: `-A KUBE-SEP-ONE -p tcp -j DNAT --to-destination [fd00:10:244::5]:8080`, Action: "dnat", Probability: 2.0 / 3},
					{Table: "nat", Chain: "KUBE-SVC-ABC", Rule: `-A KUBE-SVC-ABC -j KUBE-SEP-TWO`, Action: "jump", Probability: 1.0 / 3},
					{Table: "nat", Chain: "KUBE-SEP-TWO", Rule: `-A KUBE-SEP-TWO -p tcp -j DNAT --to-destination [fd00:10:244::9]:8080`, Action: "dnat", Probability: 1.0 / 3},
				},
			}}}},
		}},
	}
}

// wantInLabels are strings the drawings must show verbatim.
var wantInLabels = []string{
	`--comment "shop/web: \"cluster\" IP \\ <x> & #1 | ` + "`q`" + `"`,
	"[fd00:10:244::5]:8080",
	"[fd00:10:244::9]:8080",
	"ClusterIP [fd00:10:96::a]:80/TCP",
	"Service shop/web (fd00:10:96::a)",
}

func TestDOTEscape(t *testing.T) {
	for in, want := range map[string]string{
		`plain [fd00::1]:80 a/b {x} <y> |z|`: `plain [fd00::1]:80 a/b {x} <y> |z|`,
		`say "hi"`:                           `say \"hi\"`,
		`back\slash \n`:                      `back\\slash \\n`,
		"two\nlines":                         `two\nlines`,
	} {
		if got := dotEscape(in); got != want {
			t.Errorf("dotEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMermaidEscape(t *testing.T) {
	for in, want := range map[string]string{
		`plain [fd00::1]:80 a/b`: `plain [fd00::1]:80 a/b`,
		`"q" #1 <b> & |` + "`":   `#quot;q#quot; #35;1 #lt;b#gt; #amp; #124;#96;`,
		"two\nlines":             `two<br/>lines`,
	} {
		if got := mermaidEscape(in); got != want {
			t.Errorf("mermaidEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDOTThroughGraphviz pipes the DOT of every fixture through
// `dot -Tsvg` and checks that Graphviz accepts it, that the SVG is well
// formed, and that the labels come out verbatim (so the escaping is right).
func TestDOTThroughGraphviz(t *testing.T) {
	dotBin, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz `dot` is not installed (apt-get install graphviz): skipping the SVG check")
	}
	reports := map[string]*report.Report{
		"escaping":                escapingReport(),
		"walkthrough":             walkthroughReport(t, ""),
		"walkthrough-from-client": walkthroughReport(t, "pod/client"),
	}
	for _, sc := range scenarios {
		reports[sc.name] = sc.report()
	}
	for name, r := range reports {
		t.Run(name, func(t *testing.T) {
			var in bytes.Buffer
			if err := DOT(&in, r); err != nil {
				t.Fatal(err)
			}
			var out, stderr bytes.Buffer
			cmd := exec.Command(dotBin, "-Tsvg")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("dot -Tsvg: %v\n%s\ninput:\n%s", err, stderr.String(), in.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("dot -Tsvg warns: %s", stderr.String())
			}
			texts, err := svgTexts(out.Bytes())
			if err != nil {
				t.Fatalf("the SVG is not well formed: %v", err)
			}
			if name == "escaping" {
				joined := strings.Join(texts, "\n")
				for _, want := range wantInLabels {
					if !strings.Contains(joined, want) {
						t.Errorf("the SVG has no text %q; texts:\n%s", want, joined)
					}
				}
			}
			if len(texts) == 0 {
				t.Error("the SVG has no text")
			}
		})
	}
}

// svgTexts decodes the whole SVG (any XML error fails) and returns the
// character data of its <text> elements.
func svgTexts(svg []byte) ([]string, error) {
	dec := xml.NewDecoder(bytes.NewReader(svg))
	// Graphviz writes a DOCTYPE with external entities the decoder does
	// not know; only the predefined ones are used in text.
	dec.Strict = true
	var texts []string
	inText, root := false, ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tk.Name.Local
			}
			inText = tk.Name.Local == "text"
			if inText {
				texts = append(texts, "")
			}
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts[len(texts)-1] += string(tk)
			}
		}
	}
	if root != "svg" {
		return nil, errors.New("the root element is <" + root + ">, not <svg>")
	}
	return texts, nil
}

// TestMermaidWellFormed checks the Mermaid output of every fixture the
// way a parser would: one flowchart, balanced subgraph/end, every edge
// between declared nodes, labels quoted with nothing that ends them early.
func TestMermaidWellFormed(t *testing.T) {
	reports := map[string]*report.Report{
		"escaping":                escapingReport(),
		"walkthrough-from-client": walkthroughReport(t, "pod/client"),
	}
	for _, sc := range scenarios {
		reports[sc.name] = sc.report()
	}
	nodeRe := regexp.MustCompile(`^\s+(n\d+)\["([^"]*)"\]$`)
	edgeRe := regexp.MustCompile(`^\s+(n\d+) (-->|-\.->)(\|"([^"|]*)"\|)? (n\d+)$`)
	for name, r := range reports {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Mermaid(&b, r); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if len(lines) < 4 || lines[0] != "---" || !strings.HasPrefix(lines[1], "title: \"") || lines[2] != "---" || lines[3] != "flowchart LR" {
				t.Fatalf("bad header:\n%s", b.String())
			}
			declared, depth := map[string]bool{}, 0
			for _, l := range lines[4:] {
				switch {
				case strings.HasPrefix(l, "  subgraph "):
					depth++
				case strings.TrimSpace(l) == "end":
					depth--
				case nodeRe.MatchString(l):
					declared[nodeRe.FindStringSubmatch(l)[1]] = true
				case edgeRe.MatchString(l):
					m := edgeRe.FindStringSubmatch(l)
					if !declared[m[1]] || !declared[m[5]] {
						t.Errorf("edge between undeclared nodes: %q", l)
					}
				case strings.HasPrefix(l, "  classDef "), strings.HasPrefix(l, "  class "), strings.HasPrefix(l, "  linkStyle "):
				default:
					t.Errorf("unexpected line %q", l)
				}
				if depth < 0 {
					t.Fatalf("end without subgraph at %q", l)
				}
			}
			if depth != 0 {
				t.Errorf("%d subgraph(s) not closed", depth)
			}
			if name == "escaping" && !strings.Contains(b.String(), `#quot;shop/web: \#quot;cluster\#quot; IP \\ #lt;x#gt; #amp; #35;1 #124; #96;q#96;#quot;`) {
				t.Errorf("the rule is not escaped as expected:\n%s", b.String())
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	st := func(chain, action string) report.Step {
		return report.Step{Table: "nat", Chain: chain, Action: action, Rule: "-A " + chain}
	}
	for _, tc := range []struct {
		name                     string
		steps                    []report.Step
		entry, service, endpoint string
	}{
		{"clusterip", []report.Step{st("PREROUTING", "jump"), st("SERVICES", "jump"), st("SVC", "jump"), st("SEP1", "dnat"), st("SVC", "jump"), st("SEP2", "dnat")}, "SERVICES", "SVC", "SEP1"},
		// Hairpin: the endpoint chain marks for masquerade before its DNAT.
		{"hairpin", []report.Step{st("SERVICES", "jump"), st("SVC", "jump"), st("SEP1", "jump"), st("MARK-MASQ", "mark"), st("SEP1", "dnat")}, "SERVICES", "SVC", "SEP1"},
		// NodePort: EXT marks, then jumps to the service chain.
		{"nodeport", []report.Step{st("NODEPORTS", "jump"), st("EXT", "jump"), st("MARK-MASQ", "mark"), st("EXT", "jump"), st("SVC", "jump"), st("SEP1", "dnat")}, "EXT", "SVC", "SEP1"},
		{"no service chain", []report.Step{st("SERVICES", "jump"), st("SEP1", "dnat")}, "SERVICES", "", "SEP1"},
		{"reject", []report.Step{st("PREROUTING", "jump"), st("FILTER-SERVICES", "reject")}, "PREROUTING", "", "FILTER-SERVICES"},
		{"no terminal", []report.Step{st("PREROUTING", "jump"), st("SERVICES", "jump")}, "SERVICES", "", ""},
		{"empty", nil, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := splitPath(tc.steps)
			entry := ""
			if sp.entry != nil {
				entry = sp.entry.Chain
			}
			if entry != tc.entry || sp.service != tc.service || sp.endpoint != tc.endpoint {
				t.Errorf("entry, service, endpoint = %q, %q, %q; want %q, %q, %q", entry, sp.service, sp.endpoint, tc.entry, tc.service, tc.endpoint)
			}
		})
	}
}

func TestGraphNilReport(t *testing.T) {
	for _, f := range graphFormats {
		if err := f.render(io.Discard, nil); !errors.Is(err, errNilReport) {
			t.Errorf("%s: err = %v", f.ext, err)
		}
	}
}

// TestDocsPictures keeps the pictures of docs/getting-started.md in step
// with the renderers: the Mermaid block is the golden output, and the SVGs
// (made by `dot -Tsvg`, whatever its version) show every line of every box.
func TestDocsPictures(t *testing.T) {
	doc, err := os.ReadFile("../../docs/getting-started.md")
	if err != nil {
		t.Fatal(err)
	}
	mmd, err := os.ReadFile("testdata/walkthrough-from-client.mmd")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, append(append([]byte("```mermaid\n"), mmd...), "```\n"...)) {
		t.Error("docs/getting-started.md does not hold testdata/walkthrough-from-client.mmd in a ```mermaid block: paste the output of `kubectl svcpath default/test --snapshot examples/walkthrough --from pod/client -o mermaid`")
	}
	for svg, from := range map[string]string{"walkthrough.svg": "pod/client", "walkthrough-nodes.svg": ""} {
		b, err := os.ReadFile(filepath.Join("../../docs/images", svg))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := svgTexts(b)
		if err != nil {
			t.Fatalf("docs/images/%s: %v", svg, err)
		}
		have := map[string]bool{}
		for _, s := range texts {
			have[s] = true
		}
		for _, n := range allNodes(buildGraph(walkthroughReport(t, from))) {
			for _, l := range n.lines {
				if !have[l] {
					t.Errorf("docs/images/%s lacks %q: regenerate it with `kubectl svcpath default/test --snapshot examples/walkthrough --from %s -o dot | dot -Tsvg`", svg, l, from)
				}
			}
		}
	}
}

// TestGraphBadOutcomes: what fails is drawn as such, with its share: a
// destination that is no endpoint, rejected and dropped connections.
func TestGraphBadOutcomes(t *testing.T) {
	g := buildGraph(fullReport())
	byID := map[string]*graphNode{}
	for _, n := range allNodes(g) {
		byID[n.id] = n
	}
	want := map[string]string{"not a current endpoint": "25%", "rejected": "100%", "dropped": "66.7%"}
	for _, e := range g.edges {
		to := byID[e.to]
		if to.kind != kindBad {
			continue
		}
		for sub, share := range want {
			if strings.Contains(strings.Join(to.lines, "\n"), sub) {
				if e.kind != edgeBad {
					t.Errorf("edge to %q is not drawn as bad", to.lines)
				}
				if sub != "not a current endpoint" && e.label != share {
					t.Errorf("edge to %q labelled %q, want %q", to.lines, e.label, share)
				}
				delete(want, sub)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no bad box for %v", want)
	}
}
