package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/render"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// TestOutputGraphs: -o dot and -o mermaid print what pkg/render draws from
// the report, and nothing else; version -o stays json|yaml.
func TestOutputGraphs(t *testing.T) {
	hermetic(t)
	for format, draw := range map[string]func(*bytes.Buffer, *report.Report) error{
		"dot":     func(b *bytes.Buffer, r *report.Report) error { return render.DOT(b, r) },
		"mermaid": func(b *bytes.Buffer, r *report.Report) error { return render.Mermaid(b, r) },
	} {
		t.Run(format, func(t *testing.T) {
			fa := &fakeAnalyzer{report: testReport(report.SeverityWarning)}
			res := run(t, fa, "shop/web", "--snapshot", "s", "-o", format)
			if res.err != nil || res.stderr != "" {
				t.Fatalf("err = %v, stderr = %q", res.err, res.stderr)
			}
			var want bytes.Buffer
			if err := draw(&want, fa.report); err != nil {
				t.Fatal(err)
			}
			if res.stdout != want.String() {
				t.Errorf("stdout differs from render:\n%s\nwant:\n%s", res.stdout, want.String())
			}
			// --fail-on still applies after the drawing is printed.
			res = run(t, &fakeAnalyzer{report: testReport(report.SeverityWarning)}, "shop/web", "--snapshot", "s", "-o", format, "--fail-on", "warning")
			if res.err == nil || res.stdout == "" {
				t.Errorf("--fail-on warning: err = %v, stdout %d bytes", res.err, len(res.stdout))
			}
		})
	}
	res := runReal(t, "default/test", "--snapshot", walkthroughDir, "--from", "pod/client", "-o", "dot")
	if res.err != nil || !strings.HasPrefix(res.stdout, "// kubectl svcpath -o dot") || !strings.Contains(res.stdout, `"PREROUTING"`) {
		t.Errorf("walkthrough -o dot: err = %v, stderr %q, stdout:\n%s", res.err, res.stderr, res.stdout)
	}
	for _, args := range [][]string{{"version", "-o", "dot"}, {"version", "-o", "mermaid"}} {
		if res := run(t, nil, args...); res.err == nil || !strings.Contains(res.stderr, `unknown output format`) {
			t.Errorf("%v: err = %v, stderr = %q", args, res.err, res.stderr)
		}
	}
	if res := run(t, nil, "shop/web", "--snapshot", "s", "-o", "svg"); res.err == nil ||
		!strings.Contains(res.stderr, "use one of text, json, yaml, dot, mermaid") {
		t.Errorf("-o svg: err = %v, stderr = %q", res.err, res.stderr)
	}
}
