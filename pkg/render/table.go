package render

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// cell is one table cell: its text and the style to render it with. Widths
// are measured on the unstyled text, so colour never shifts a column.
type cell struct {
	text  string
	style lipgloss.Style
}

func plain(s string) cell { return cell{text: s} }

func orDash(s string) cell {
	if s == "" {
		return plain("-")
	}
	return plain(s)
}

func yesNo(b bool, yes, no lipgloss.Style) cell {
	if b {
		return cell{"yes", yes}
	}
	return cell{"no", no}
}

// table lays out rows in columns two spaces apart, without borders (like
// kubectl get). Trailing empty cells are dropped and the last cell of a row
// is never padded, so no line ends in spaces.
type table struct {
	rows       [][]cell
	rightAlign map[int]bool
}

// add appends a row of cells that share one style.
func (tb *table) add(style lipgloss.Style, texts ...string) {
	row := make([]cell, len(texts))
	for i, s := range texts {
		row[i] = cell{s, style}
	}
	tb.rows = append(tb.rows, row)
}

func (tb *table) write(t *textWriter, indent int) {
	var widths []int
	for i, row := range tb.rows {
		row = trimEmpty(row)
		tb.rows[i] = row
		for c, cl := range row {
			if c >= len(widths) {
				widths = append(widths, 0)
			}
			widths[c] = max(widths[c], lipgloss.Width(cl.text))
		}
	}
	for _, row := range tb.rows {
		var parts []string
		for c, cl := range row {
			fill := strings.Repeat(" ", widths[c]-lipgloss.Width(cl.text))
			text := cl.text
			if text != "" {
				text = cl.style.Render(text)
			}
			last := c == len(row)-1
			switch {
			case tb.rightAlign[c]:
				parts = append(parts, fill, text)
			case last:
				parts = append(parts, text)
			default:
				parts = append(parts, text, fill)
			}
			if !last {
				parts = append(parts, "  ")
			}
		}
		t.line(indent, parts...)
	}
}

// trimEmpty drops the empty cells at the end of a row.
func trimEmpty(row []cell) []cell {
	for len(row) > 0 && row[len(row)-1].text == "" {
		row = row[:len(row)-1]
	}
	return row
}
