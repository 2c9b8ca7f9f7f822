package ctcollect

import "errors"

var (
	// errMalformed is a ctnetlink message that does not parse.
	errMalformed = errors.New("malformed ctnetlink message")
	// ErrBadTarget is a Target whose address or protocol is not usable.
	ErrBadTarget = errors.New("bad conntrack target")
	// ErrProtocol is a protocol Lookup cannot build a tuple for.
	ErrProtocol = errors.New("unsupported protocol")
	// errStop ends a dump early (the Limit is reached).
	errStop = errors.New("stop dump")
)
