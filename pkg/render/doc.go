// Package render writes a report.Report for people (Text, with lipgloss
// styles), for programs (JSON, YAML) and as a picture of the path (DOT for
// Graphviz, Mermaid; both from one graph model, graph.go). It sees nothing but the public
// report schema, so every output format shows the same facts, and it never
// decides policy: colour on or off is the caller's choice (TextOptions.Color).
//
// lipgloss is imported here and nowhere else (hack/verify-imports.sh).
package render
