package render

import (
	"bufio"
	"io"
	"regexp"
	"strings"

	"github.com/charmbracelet/lipgloss"
	ltable "github.com/charmbracelet/lipgloss/table"
	"github.com/muesli/termenv"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// AuditSummary is the text summary of `kubectl svcpath audit`, laid out by
// pkg/audit (which decides every row) and drawn by AuditText: a title
// line, sections of tables and lines, and a one-line summary.
type AuditSummary struct {
	// Title is the first line; its first word is set in bold.
	Title    string
	Sections []AuditSection
	// Summary is the last line, coloured by SummarySeverity (the worst
	// finding; "" when clean).
	Summary         string
	SummarySeverity report.Severity
}

// AuditSection is one section: a heading, then a table, lines, or a note.
type AuditSection struct {
	Heading string
	// Good marks a heading that is good news ("No findings."), in green.
	Good    bool
	Headers []string
	Rows    [][]string
	// SeverityColumn is the column of Rows holding severities, coloured
	// as in the report; -1 for none.
	SeverityColumn int
	// Lines follow the table, indented by two spaces.
	Lines []string
	// Note is a faint line after the rest.
	Note string
}

// auditTrailing matches the spaces the table pads a line's last cell
// with, before the colour resets.
var auditTrailing = regexp.MustCompile(`[ ]+((?:\x1b\[[0-9;]*m)*)$`)

// AuditText draws an audit summary: tables in the kubectl look (a header,
// a line under it, columns two spaces apart, no other border), severities
// coloured, no line ending in spaces.
func AuditText(w io.Writer, s *AuditSummary, o TextOptions) error {
	st := newStyles(w, o.Color)
	// The cells' styles, from a renderer set up as newStyles sets its own.
	re := lipgloss.NewRenderer(w)
	if o.Color {
		re.SetColorProfile(termenv.ANSI)
	} else {
		re.SetColorProfile(termenv.Ascii)
	}
	re.SetHasDarkBackground(true)
	bw := bufio.NewWriter(w)
	title := s.Title
	if first, rest, ok := strings.Cut(title, " "); ok {
		title = st.title.Render(first) + " " + rest
	}
	bw.WriteString(title + "\n\n")
	for _, sec := range s.Sections {
		if sec.Heading != "" {
			h := st.heading.Render(sec.Heading)
			if sec.Good {
				h = st.good.Render(sec.Heading)
			}
			bw.WriteString(h + "\n")
		}
		if len(sec.Headers) > 0 {
			bw.WriteString(auditTable(re, st, sec) + "\n")
		}
		for _, l := range sec.Lines {
			bw.WriteString("  " + l + "\n")
		}
		if sec.Note != "" {
			bw.WriteString(st.label.Render(sec.Note) + "\n")
		}
		bw.WriteString("\n")
	}
	line := st.good.Render(s.Summary)
	if s.SummarySeverity != "" {
		line = st.sev(s.SummarySeverity).Render(s.Summary)
	}
	bw.WriteString(line + "\n")
	return bw.Flush()
}

func auditTable(re *lipgloss.Renderer, st styles, sec AuditSection) string {
	data := ltable.NewStringData(sec.Rows...)
	last := len(sec.Headers) - 1
	t := ltable.New().Headers(sec.Headers...).Data(data).
		Border(lipgloss.NormalBorder()).BorderStyle(st.label).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderColumn(false).BorderRow(false).BorderHeader(true).Wrap(false).
		StyleFunc(func(r, c int) lipgloss.Style {
			s := re.NewStyle()
			if c < last {
				s = s.PaddingRight(2)
			}
			if r == ltable.HeaderRow {
				return s.Inherit(st.heading)
			}
			if c == sec.SeverityColumn && r < data.Rows() {
				if sv, ok := st.severity[report.Severity(data.At(r, c))]; ok {
					return s.Inherit(sv)
				}
			}
			return s
		})
	lines := strings.Split(t.Render(), "\n")
	for i, l := range lines {
		lines[i] = auditTrailing.ReplaceAllString(l, "$1")
	}
	return strings.Join(lines, "\n")
}
