package render

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// Fixed ANSI colours (0-15): the terminal's own palette decides the exact
// shade, and nothing has to query the terminal for its background.
const (
	colorRed     = lipgloss.Color("1")
	colorGreen   = lipgloss.Color("2")
	colorYellow  = lipgloss.Color("3")
	colorMagenta = lipgloss.Color("5")
	colorCyan    = lipgloss.Color("6")
)

// styles holds every style of the text report, so the look is defined in
// one place.
type styles struct {
	title    lipgloss.Style // the service name
	heading  lipgloss.Style // section headings: Endpoints, Node ..., Findings
	subhead  lipgloss.Style // a port and an entry point under a node
	label    lipgloss.Style // field labels and quiet words
	addr     lipgloss.Style // IP addresses, ip:port
	chain    lipgloss.Style // table/chain names
	num      lipgloss.Style // step numbers
	rule     lipgloss.Style // rule lines and other evidence, quoted verbatim
	pct      lipgloss.Style // probabilities
	good     lipgloss.Style // ready, no problems
	bad      lipgloss.Style // not ready, dropped, stale
	warn     lipgloss.Style // terminating, SNAT, partial data
	id       lipgloss.Style // finding IDs
	severity map[report.Severity]lipgloss.Style
}

// newStyles builds the styles for w. With color false the renderer uses the
// Ascii profile, which writes no escape sequence at all; with color true it
// writes 16-colour ANSI sequences whatever w is.
func newStyles(w io.Writer, color bool) styles {
	r := lipgloss.NewRenderer(w)
	if color {
		r.SetColorProfile(termenv.ANSI)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	r.SetHasDarkBackground(true) // never query the terminal
	base := r.NewStyle().TabWidth(lipgloss.NoTabConversion)
	return styles{
		title:   base.Bold(true),
		heading: base.Bold(true),
		subhead: base.Bold(true),
		label:   base.Faint(true),
		addr:    base.Foreground(colorCyan),
		chain:   base.Foreground(colorMagenta),
		num:     base.Bold(true),
		rule:    base.Faint(true),
		pct:     base.Bold(true),
		good:    base.Foreground(colorGreen),
		bad:     base.Foreground(colorRed).Bold(true),
		warn:    base.Foreground(colorYellow),
		id:      base.Bold(true),
		severity: map[report.Severity]lipgloss.Style{
			report.SeverityError:   base.Foreground(colorRed).Bold(true),
			report.SeverityWarning: base.Foreground(colorYellow).Bold(true),
			report.SeverityInfo:    base.Foreground(colorCyan).Bold(true),
		},
	}
}

// sev returns the style of a severity; unknown severities are unstyled.
func (s styles) sev(v report.Severity) lipgloss.Style {
	if st, ok := s.severity[v]; ok {
		return st
	}
	return s.label.UnsetFaint()
}
