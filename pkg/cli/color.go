package cli

import (
	"io"

	"golang.org/x/term"
)

// Values of --color.
const (
	colorAuto   = "auto"
	colorAlways = "always"
	colorNever  = "never"
)

var colorModes = []string{colorAuto, colorAlways, colorNever}

// resolveColor decides whether the text report is coloured. always and
// never are obeyed as given. auto colours only a terminal, and not when
// NO_COLOR is set to a non-empty value (https://no-color.org) or TERM is
// "dumb". getenv is os.LookupEnv outside tests.
func resolveColor(mode string, isTerminal bool, getenv func(string) (string, bool)) bool {
	switch mode {
	case colorAlways:
		return true
	case colorNever:
		return false
	}
	if v, ok := getenv("NO_COLOR"); ok && v != "" {
		return false
	}
	if v, _ := getenv("TERM"); v == "dumb" {
		return false
	}
	return isTerminal
}

// isTerminal reports whether w is a terminal (a file descriptor that is a
// tty). Pipes, files and buffers are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
