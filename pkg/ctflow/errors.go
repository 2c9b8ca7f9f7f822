package ctflow

import (
	"errors"
	"fmt"
)

// Sentinel errors. Parse errors are *LineError values wrapping one of them.
var (
	// ErrMalformed means a line is not a conntrack entry.
	ErrMalformed = errors.New("malformed conntrack entry")
	// ErrMissingTuple means an entry lacks its original or reply tuple, or a
	// tuple lacks an address or a port its protocol needs.
	ErrMissingTuple = errors.New("incomplete tuple")
	// ErrBadValue means a field's value does not parse (address, number).
	ErrBadValue = errors.New("bad field value")
)

// LineError is a parse error with its position in the input.
type LineError struct {
	// Line is 1-based.
	Line int
	Text string
	Err  error
}

// Error implements error, in the form "<err> (line N: "<text>")".
func (e *LineError) Error() string {
	return fmt.Sprintf("%v (line %d: %q)", e.Err, e.Line, e.Text)
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }
