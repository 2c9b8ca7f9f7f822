package route

import (
	"github.com/svcpath/kubectl-svcpath/pkg/internal/iprjson"

	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors. Lookup failures are *LookupError values wrapping one of
// the first five; test them with errors.Is.
var (
	// ErrNoRoute is ENETUNREACH ("Network is unreachable"): no rule produced a
	// route, a rule's action is "unreachable", a throw route ended the
	// search, an IPv6 "unreachable" route matched, or (output) the given
	// source address is not local.
	ErrNoRoute = errors.New("network is unreachable")
	// ErrHostUnreachable is EHOSTUNREACH ("No route to host"): an IPv4
	// route of type unreachable matched, or forwarding is disabled for an
	// input lookup.
	ErrHostUnreachable = errors.New("no route to host")
	// ErrBlackhole is EINVAL from a blackhole route or rule: the packet is
	// silently discarded.
	ErrBlackhole = errors.New("blackhole")
	// ErrProhibit is EACCES ("Permission denied") from a prohibit route or
	// rule.
	ErrProhibit = errors.New("administratively prohibited")
	// ErrInvalid is EINVAL for martian input: a zero, multicast or
	// broadcast source, or a route type that cannot carry the packet.
	ErrInvalid = errors.New("invalid argument")

	// ErrMalformed means the input is not the JSON iproute2 prints.
	ErrMalformed = iprjson.ErrMalformed
)

// LookupError is a failed Lookup: which sentinel, and the rule and route that
// decided it (either may be nil).
type LookupError struct {
	Dst   netip.Addr
	Err   error
	Rule  *Rule
	Route *Route
	// Reason is a short human explanation ("blackhole route 10.9.0.0/16").
	Reason string
}

// Error implements error.
func (e *LookupError) Error() string {
	s := fmt.Sprintf("route to %s: %v", e.Dst, e.Err)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Unwrap returns the sentinel.
func (e *LookupError) Unwrap() error { return e.Err }

// KernelMessage returns the strerror text `ip route get` prints after
// "RTNETLINK answers: " for this failure.
func (e *LookupError) KernelMessage() string {
	switch {
	case errors.Is(e.Err, ErrNoRoute):
		return "Network is unreachable"
	case errors.Is(e.Err, ErrHostUnreachable):
		return "No route to host"
	case errors.Is(e.Err, ErrProhibit):
		return "Permission denied"
	case errors.Is(e.Err, ErrBlackhole), errors.Is(e.Err, ErrInvalid):
		return "Invalid argument"
	}
	return e.Err.Error()
}
