package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

var scenarios = []struct {
	name   string
	report func() *report.Report
}{
	{"full", fullReport},
	{"clean", cleanReport},
	{"headless", headlessReport},
	{"externalname", externalNameReport},
	{"trace", traceReport},
	{"hairpin", hairpinReport},
	{"offcluster", offClusterReport},
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			outputs := []struct {
				suffix string
				render func(*bytes.Buffer, *report.Report) error
			}{
				{".txt", func(b *bytes.Buffer, r *report.Report) error { return Text(b, r, TextOptions{}) }},
				{".color.txt", func(b *bytes.Buffer, r *report.Report) error { return Text(b, r, TextOptions{Color: true}) }},
				{".json", func(b *bytes.Buffer, r *report.Report) error { return JSON(b, r) }},
				{".yaml", func(b *bytes.Buffer, r *report.Report) error { return YAML(b, r) }},
			}
			for _, o := range outputs {
				var buf bytes.Buffer
				if err := o.render(&buf, sc.report()); err != nil {
					t.Fatalf("render %s: %v", o.suffix, err)
				}
				assertGolden(t, buf.Bytes(), sc.name+o.suffix)
			}
		})
	}
}

func TestTextColor(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var off, on bytes.Buffer
			if err := Text(&off, sc.report(), TextOptions{Color: false}); err != nil {
				t.Fatal(err)
			}
			if err := Text(&on, sc.report(), TextOptions{Color: true}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(off.String(), "\x1b") {
				t.Errorf("colour off: output holds an escape sequence:\n%q", off.String())
			}
			if !strings.Contains(on.String(), "\x1b[") {
				t.Errorf("colour on: output holds no ANSI sequence")
			}
			if got := stripANSI(on.String()); got != off.String() {
				t.Errorf("colour on, stripped of escapes, differs from colour off:\n%s", firstDiff(off.String(), got))
			}
		})
	}
}

// TestTextLayout checks the properties the on-call reader relies on, beyond
// the golden files.
func TestTextLayout(t *testing.T) {
	r := fullReport()
	var buf bytes.Buffer
	if err := Text(&buf, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()

	// Every rule line of the report appears verbatim on a line of its own:
	// evidence is never truncated or wrapped.
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[strings.TrimLeft(l, " ")] = true
	}
	for _, n := range r.Nodes {
		for _, p := range n.Ports {
			for _, e := range p.Entries {
				for _, s := range e.Steps {
					if !lines[s.Rule] {
						t.Errorf("rule of %s/%s is not printed whole: %q", s.Table, s.Chain, s.Rule)
					}
				}
			}
		}
	}
	for _, f := range r.Findings {
		for _, ev := range f.Evidence {
			if !lines[ev] {
				t.Errorf("evidence of %s is not printed whole: %q", f.ID, ev)
			}
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d ends in a space: %q", i+1, l)
		}
	}

	// Findings come worst first, and the summary counts them.
	order := []string{"ERROR    ENDPOINT-MISSING", "ERROR    ENDPOINT-STALE", "ERROR    KUBE-PROXY-ABSENT",
		"WARNING  LB-SKEW", "WARNING  TERMINATING-ENDPOINTS-ONLY", "INFO     SESSION-AFFINITY-CLIENTIP", "INFO     SNAT-OFF-CLUSTER"}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		if i < 0 {
			t.Errorf("finding line %q not found", s)
			continue
		}
		if i < last {
			t.Errorf("finding %q is out of severity order", s)
		}
		last = i
	}
	if want := "3 errors, 2 warnings, 2 info on 3 nodes\n"; !strings.HasSuffix(out, want) {
		t.Errorf("summary: want suffix %q, got last line %q", want, lastLine(out))
	}

	// Nodes are shown sorted by name.
	if a, b := strings.Index(out, "Node worker-1"), strings.Index(out, "Node worker-2"); a < 0 || b < 0 || a > b {
		t.Errorf("nodes not sorted by name (worker-1 at %d, worker-2 at %d)", a, b)
	}
	for _, want := range []string{
		"→  50%  10.244.1.10:8080",
		"→  33.3%  [fd00:10:244:1::a]:8080",
		"✗  66.7%  dropped",
		"✗  100%  rejected",
		"not a current endpoint",
		"masquerade (SNAT): off-cluster sources, hairpin",
		"masquerade (SNAT): all sources (masqueradeAll)",
		"off-cluster clients:",
		"partial data:",
		"note: conntrack was not collected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

func TestTextSummary(t *testing.T) {
	tests := []struct {
		name     string
		findings []report.Finding
		nodes    int
		want     string
	}{
		{"nothing", nil, 2, "no problems found on 2 nodes"},
		{"no nodes", nil, 0, "no problems found"},
		{"info only", []report.Finding{{ID: "X", Severity: report.SeverityInfo}}, 1, "no problems found, 1 info on 1 node"},
		{"mixed", []report.Finding{
			{ID: "A", Severity: report.SeverityError}, {ID: "B", Severity: report.SeverityError},
			{ID: "C", Severity: report.SeverityWarning},
		}, 2, "2 errors, 1 warning on 2 nodes"},
		{"warnings", []report.Finding{{ID: "A", Severity: report.SeverityWarning}, {ID: "B", Severity: report.SeverityWarning}}, 1, "2 warnings on 1 node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &report.Report{Service: report.Service{Namespace: "ns", Name: "svc", Explanation: "x"}, Findings: tc.findings}
			for i := 0; i < tc.nodes; i++ {
				r.Nodes = append(r.Nodes, report.Node{Name: "n" + string(rune('a'+i))})
			}
			var buf bytes.Buffer
			if err := Text(&buf, r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := lastLine(buf.String()); got != tc.want {
				t.Errorf("summary = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	tests := []struct {
		p    float64
		want string
	}{
		{0, "0%"}, {-1, "0%"}, {1, "100%"}, {0.5, "50%"}, {1.0 / 3, "33.3%"}, {2.0 / 3, "66.7%"},
		{0.25, "25%"}, {0.125, "12.5%"}, {0.99999999, "100%"}, {0.0001, "<0.1%"}, {0.001, "0.1%"},
	}
	for _, tc := range tests {
		if got := percent(tc.p); got != tc.want {
			t.Errorf("percent(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// TestRenderDoesNotModify guards the one-way data flow: rendering sorts and
// normalises copies, never the caller's report.
func TestRenderDoesNotModify(t *testing.T) {
	for _, sc := range scenarios {
		r, orig := sc.report(), sc.report()
		var buf bytes.Buffer
		if err := Text(&buf, r, TextOptions{Color: true}); err != nil {
			t.Fatal(err)
		}
		if err := JSON(&buf, r); err != nil {
			t.Fatal(err)
		}
		if err := YAML(&buf, r); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, orig) {
			t.Errorf("%s: rendering modified the report", sc.name)
		}
	}
}

func TestNilReport(t *testing.T) {
	var buf bytes.Buffer
	for name, err := range map[string]error{
		"text": Text(&buf, nil, TextOptions{}),
		"json": JSON(&buf, nil),
		"yaml": YAML(&buf, nil),
	} {
		if !errors.Is(err, errNilReport) {
			t.Errorf("%s(nil) = %v, want errNilReport", name, err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("nil report wrote %q", buf.String())
	}
}

// TestMachineOutputRoundTrip: JSON and YAML decode back to the report, with
// nil lists written as empty ones.
func TestMachineOutputRoundTrip(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			want := normalize(sc.report())
			var j, y bytes.Buffer
			if err := JSON(&j, sc.report()); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(j.String(), "}\n") || !strings.HasPrefix(j.String(), "{\n  \"apiVersion\"") {
				t.Errorf("json is not 2-space indented with a trailing newline:\n%s", j.String())
			}
			// Lists are never null; the only nulls are the trace branch's
			// pointers, which the schema writes even when nil ("snat": null
			// is "no SNAT").
			if s := branchNulls.ReplaceAllString(j.String(), ""); strings.Contains(s, "null") {
				t.Errorf("json holds null:\n%s", j.String())
			}
			var fromJSON report.Report
			if err := json.Unmarshal(j.Bytes(), &fromJSON); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, &fromJSON) {
				t.Errorf("json round trip differs")
			}
			if err := YAML(&y, sc.report()); err != nil {
				t.Fatal(err)
			}
			var fromYAML report.Report
			if err := yaml.UnmarshalStrict(y.Bytes(), &fromYAML); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, &fromYAML) {
				t.Errorf("yaml round trip differs")
			}
		})
	}
}

// TestJSONKeyOrder checks, at every level, that JSON keys come in the order
// of the struct fields (so a reordered or re-tagged field shows up here).
func TestJSONKeyOrder(t *testing.T) {
	for _, sc := range scenarios {
		var buf bytes.Buffer
		if err := JSON(&buf, sc.report()); err != nil {
			t.Fatal(err)
		}
		checkKeyOrder(t, sc.name, reflect.TypeOf(report.Report{}), json.RawMessage(buf.Bytes()))
	}
}

// branchNulls matches the nil pointers of a trace branch, which have no
// omitempty in the schema.
var branchNulls = regexp.MustCompile(`"(dnat|snat|egress|deliveredTo)": null`)

func checkKeyOrder(t *testing.T, path string, typ reflect.Type, raw json.RawMessage) {
	t.Helper()
	if string(raw) == "null" {
		return
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for i, it := range items {
			checkKeyOrder(t, path+"["+itoa(i)+"]", typ.Elem(), it)
		}
	case reflect.Struct:
		keys, values := objectKeys(t, path, raw)
		var want []string
		fields := map[string]reflect.Type{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if _, ok := values[name]; ok {
				want = append(want, name)
				fields[name] = f.Type
			}
		}
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("%s: keys %v, want struct order %v", path, keys, want)
		}
		for _, k := range keys {
			if ft, ok := fields[k]; ok {
				checkKeyOrder(t, path+"."+k, ft, values[k])
			}
		}
	}
}

// objectKeys returns the keys of a JSON object in document order.
func objectKeys(t *testing.T, path string, raw json.RawMessage) ([]string, map[string]json.RawMessage) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v", path, err)
	}
	var keys []string
	values := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		k := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s.%s: %v", path, k, err)
		}
		keys = append(keys, k)
		values[k] = v
	}
	return keys, values
}

func itoa(i int) string { return strconv.Itoa(i) }

func lastLine(s string) string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return l[len(l)-1]
}

// stripANSI removes CSI escape sequences.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestZeroValues renders reports made of zero values and odd numbers: bad
// input gives odd output, never a panic.
func TestZeroValues(t *testing.T) {
	nan := 0.0
	nan = nan / nan
	reports := []*report.Report{
		{},
		{Nodes: []report.Node{{}}, Findings: []report.Finding{{}}},
		{Nodes: []report.Node{{Ports: []report.Port{{Entries: []report.Entry{{
			Steps:             []report.Step{{}, {Probability: nan, Line: -1}},
			Targets:           []report.Target{{}, {Probability: -1, Port: -5}, {Probability: nan}},
			OffClusterTargets: []report.Target{{IP: "::1", Probability: 2}},
			DropProbability:   nan, RejectProbability: -1,
			Expected: &report.Expectation{},
		}}}}, Findings: []report.Finding{{Severity: "fatal", Evidence: []string{"", "\n", "a\nb"}}}}}},
	}
	for i, r := range reports {
		var buf bytes.Buffer
		for _, color := range []bool{false, true} {
			if err := Text(&buf, r, TextOptions{Color: color}); err != nil {
				t.Errorf("report %d: Text: %v", i, err)
			}
		}
		// NaN has no JSON form: an error is the right answer, a panic is not.
		if err := JSON(&buf, r); err != nil && !strings.Contains(err.Error(), "NaN") {
			t.Errorf("report %d: JSON: %v", i, err)
		}
		if err := YAML(&buf, r); err != nil && !strings.Contains(err.Error(), "NaN") {
			t.Errorf("report %d: YAML: %v", i, err)
		}
	}
}
