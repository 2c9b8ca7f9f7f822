package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

func TestCheckFailOn(t *testing.T) {
	withFindings := func(sevs ...report.Severity) *report.Report {
		r := &report.Report{}
		for i, s := range sevs {
			r.Findings = append(r.Findings, report.Finding{ID: "F" + string(rune('A'+i)), Severity: s})
		}
		return r
	}
	tests := []struct {
		name      string
		report    *report.Report
		threshold string
		wantFail  bool
		wantMsg   string
	}{
		{"none never fails", withFindings(report.SeverityError), "none", false, ""},
		{"empty never fails", withFindings(report.SeverityError), "", false, ""},
		{"error with an error", withFindings(report.SeverityError, report.SeverityInfo), "error", true, "(1 error)"},
		{"error with a warning only", withFindings(report.SeverityWarning), "error", false, ""},
		{"warning with a warning", withFindings(report.SeverityWarning, report.SeverityWarning), "warning", true, "(2 warnings)"},
		{"warning with an error", withFindings(report.SeverityError, report.SeverityInfo), "warning", true, "(1 error)"},
		{"warning with info only", withFindings(report.SeverityInfo), "warning", false, ""},
		{"info with info", withFindings(report.SeverityInfo, report.SeverityWarning), "info", true, "(1 warning, 1 info)"},
		{"no findings", withFindings(), "info", false, ""},
		{"node finding missing from the top level", &report.Report{
			Nodes: []report.Node{{Name: "n1", Findings: []report.Finding{{ID: "X", Severity: report.SeverityError}}}},
		}, "error", true, "(1 error)"},
		{"node finding listed twice counts once", &report.Report{
			Findings: []report.Finding{{ID: "X", Severity: report.SeverityError, Node: "n1"}},
			Nodes:    []report.Node{{Name: "n1", Findings: []report.Finding{{ID: "X", Severity: report.SeverityError, Node: "n1"}}}},
		}, "error", true, "(1 error)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkFailOn(tc.report, tc.threshold)
			if !tc.wantFail {
				if err != nil {
					t.Fatalf("checkFailOn = %v, want nil", err)
				}
				return
			}
			var fe *FindingsError
			if !errors.As(err, &fe) {
				t.Fatalf("checkFailOn = %v, want a *FindingsError", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "--fail-on="+tc.threshold) {
				t.Errorf("message %q lacks %q or the flag", err.Error(), tc.wantMsg)
			}
		})
	}
}
