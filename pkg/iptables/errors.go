package iptables

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Parse, ParseStrict, Validate,
// ParseRule and (*Chain).Rules wraps ErrMalformed, and a more specific
// sentinel where one applies; use errors.Is to test them and errors.As with
// *ParseError to get the line number.
var (
	// ErrMalformed: the input is not valid iptables-save output.
	ErrMalformed = errors.New("malformed iptables-save input")
	// ErrTruncated: the input ends inside a table (no COMMIT), e.g. a cut
	// capture.
	ErrTruncated = errors.New("truncated iptables-save input")
	// ErrUndeclaredChain: a rule is appended to a chain that the table does
	// not declare.
	ErrUndeclaredChain = errors.New("rule for an undeclared chain")
	// ErrNoTable: a chain or rule line appears outside a *table ... COMMIT
	// block.
	ErrNoTable = errors.New("line outside a table")
	// ErrBadPacket: Trace was given a packet it cannot trace.
	ErrBadPacket = errors.New("invalid packet")
)

// ParseError is a malformed line of a dump.
type ParseError struct {
	// Line is the 1-based line number in the dump (0 for ParseRule).
	Line int
	// Text is the offending line, shortened when long.
	Text string
	// Msg says what is wrong.
	Msg string
	// Kind is a more specific sentinel (ErrTruncated, ErrUndeclaredChain,
	// ErrNoTable) or nil.
	Kind error
}

// Error implements error.
func (e *ParseError) Error() string {
	text := e.Text
	if len(text) > 120 {
		text = text[:117] + "..."
	}
	if e.Line > 0 {
		return fmt.Sprintf("iptables-save line %d: %s: %q", e.Line, e.Msg, text)
	}
	return fmt.Sprintf("iptables rule: %s: %q", e.Msg, text)
}

// Unwrap makes errors.Is(err, ErrMalformed) and errors.Is(err, e.Kind) true.
func (e *ParseError) Unwrap() []error {
	if e.Kind != nil {
		return []error{ErrMalformed, e.Kind}
	}
	return []error{ErrMalformed}
}

func lineErr(line int, text string, kind error, format string, args ...any) *ParseError {
	return &ParseError{Line: line, Text: text, Msg: fmt.Sprintf(format, args...), Kind: kind}
}
