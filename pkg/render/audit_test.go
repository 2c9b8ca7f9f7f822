package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

func TestAuditText(t *testing.T) {
	s := &AuditSummary{
		Title: "Audit · test · 2/3 nodes reported",
		Sections: []AuditSection{
			{Heading: "Findings", Headers: []string{"SEVERITY", "FINDING", "WHERE"}, Rows: [][]string{
				{"error", "ENDPOINT-STALE", "1/2 nodes: n1"}, {"info", "SNAT-OFF-CLUSTER", "all 2 nodes"}}},
			{Heading: "Skipped", SeverityColumn: -1, Lines: []string{"headless (1): ns/x"}, Note: "a note"},
		},
		Summary: "1 error", SummarySeverity: report.SeverityError,
	}
	var plain, color bytes.Buffer
	if err := AuditText(&plain, s, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := AuditText(&color, s, TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	want := "Audit · test · 2/3 nodes reported\n\nFindings\nSEVERITY  FINDING           WHERE\n"
	if !strings.HasPrefix(plain.String(), want) || strings.Contains(plain.String(), "\x1b") {
		t.Errorf("plain:\n%q", plain.String())
	}
	for _, w := range []string{"error     ENDPOINT-STALE    1/2 nodes: n1\n", "  headless (1): ns/x\n", "a note\n", "\n1 error\n"} {
		if !strings.Contains(plain.String(), w) {
			t.Errorf("plain lacks %q:\n%s", w, plain.String())
		}
	}
	for _, l := range strings.Split(plain.String()+color.String(), "\n") {
		if strings.HasSuffix(strings.TrimRight(l, "\x1b[0m"), " ") {
			t.Errorf("line ends in a space: %q", l)
		}
	}
	if !strings.Contains(color.String(), "\x1b[1;31merror") && !strings.Contains(color.String(), "\x1b[31;1merror") {
		t.Errorf("the severity is not coloured:\n%q", color.String())
	}
}
