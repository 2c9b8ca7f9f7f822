package netdev

import (
	"fmt"
	"strconv"
	"strings"
)

// Scope is a kernel route/address scope (RT_SCOPE_* in
// include/uapi/linux/rtnetlink.h). A larger number is a narrower scope.
type Scope uint8

// Scopes as the kernel numbers them; iproute2 names them "global", "site",
// "link", "host" and "nowhere".
const (
	ScopeUniverse Scope = 0
	ScopeSite     Scope = 200
	ScopeLink     Scope = 253
	ScopeHost     Scope = 254
	ScopeNowhere  Scope = 255
)

// String returns iproute2's name for the scope ("global" for universe) or the
// number for scopes without a name.
func (s Scope) String() string {
	switch s {
	case ScopeUniverse:
		return "global"
	case ScopeSite:
		return "site"
	case ScopeLink:
		return "link"
	case ScopeHost:
		return "host"
	case ScopeNowhere:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

// ParseScope reads a scope as iproute2 prints it ("global", "universe",
// "site", "link", "host", "nowhere" or a number 0-255).
func ParseScope(s string) (Scope, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "global", "universe":
		return ScopeUniverse, nil
	case "site":
		return ScopeSite, nil
	case "link":
		return ScopeLink, nil
	case "host":
		return ScopeHost, nil
	case "nowhere":
		return ScopeNowhere, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 8)
	if err != nil {
		return 0, fmt.Errorf("scope %q: %w", s, ErrMalformed)
	}
	return Scope(n), nil
}

// Family is an address family as iproute2 names it.
type Family string

// Families of `ip -j addr` ("family") and of routes.
const (
	FamilyInet  Family = "inet"
	FamilyInet6 Family = "inet6"
)
