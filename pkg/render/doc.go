// Package render writes a report.Report for people (Text, with lipgloss
// styles) and for programs (JSON, YAML). It sees nothing but the public
// report schema, so every output format shows the same facts, and it never
// decides policy: colour on or off is the caller's choice (TextOptions.Color).
//
// lipgloss is imported here and nowhere else (hack/verify-imports.sh).
package render
