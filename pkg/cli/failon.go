package cli

import (
	"fmt"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// failOnNone is the default of --fail-on: findings never change the exit
// status.
const failOnNone = "none"

var failOnValues = []string{string(report.SeverityError), string(report.SeverityWarning), string(report.SeverityInfo), failOnNone}

// FindingsError is returned by Run when --fail-on is set and the report has
// findings at or above that severity. The report has been printed already;
// the error only sets the exit status (1) and says why.
type FindingsError struct {
	// Threshold is the --fail-on severity.
	Threshold report.Severity
	// Counts holds the number of findings per severity at or above it.
	Counts map[report.Severity]int
}

func (e *FindingsError) Error() string {
	var parts []string
	for _, s := range []report.Severity{report.SeverityError, report.SeverityWarning, report.SeverityInfo} {
		n := e.Counts[s]
		switch {
		case n == 0:
		case n == 1 || s == report.SeverityInfo:
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		default:
			parts = append(parts, fmt.Sprintf("%d %ss", n, s))
		}
	}
	return fmt.Sprintf("the report has findings at or above severity %q (%s); failing as asked by --fail-on=%s",
		e.Threshold, strings.Join(parts, ", "), e.Threshold)
}

// checkFailOn returns a *FindingsError when r has findings at or above the
// threshold, nil otherwise or when threshold is "none".
func checkFailOn(r *report.Report, threshold string) error {
	if threshold == failOnNone || threshold == "" {
		return nil
	}
	limit := report.Severity(threshold).Rank()
	counts := map[report.Severity]int{}
	for _, f := range findings(r) {
		if f.Severity.Rank() <= limit {
			counts[f.Severity]++
		}
	}
	if len(counts) == 0 {
		return nil
	}
	return &FindingsError{Threshold: report.Severity(threshold), Counts: counts}
}

// findings returns every finding of r once: the top-level list holds the
// node findings too, but a node finding missing from it still counts.
func findings(r *report.Report) []report.Finding {
	seen := map[string]bool{}
	var out []report.Finding
	add := func(node string, f report.Finding) {
		if f.Node == "" {
			f.Node = node
		}
		k := strings.Join([]string{f.ID, string(f.Severity), f.Node, f.Port, f.Entry, f.Message}, "\x00")
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	for _, f := range r.Findings {
		add("", f)
	}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			add(n.Name, f)
		}
	}
	return out
}
