// Package route parses a node's routing state from the JSON iproute2 prints
// (`ip -j route show table all`, `ip -j -6 route show table all`,
// `ip -j rule`) and answers route lookups over it the way the kernel does:
// FIB.Lookup returns what `ip route get DST [from SRC] [iif IF] [mark M]`
// would print on that node (type, table, device, gateway, source address) or
// why the packet has no route (blackhole, unreachable, prohibit, none).
//
// The package is a pure parser and simulator: it never runs commands.
// Source address selection needs the node's interface addresses, which come
// from package netdev (Config.Links). Result.MasqueradeSource tells which
// address MASQUERADE picks for a packet leaving by the route, which is not
// always the route's prefsrc.
//
// Facts about iproute2's JSON this package relies on (iproute2 6.1, Linux
// 6.18, checked by the kernel tests): `ip -j route show table all` prints
// both families; main-table routes carry no "table" key; host routes print
// their destination without a length ("10.1.139.93"); the type is printed
// only when it is not unicast; scope only when it is not global; IPv6 routes
// always carry "metric" and "pref"; an IPv4 route with an IPv6 nexthop prints
// "via": {"family": "inet6", "host": ...}; multipath routes print
// "nexthops" with per-hop "flags" (a nexthop whose device is down is
// "dead"). In `ip -j rule`, "not" and "l3mdev" are printed as null-valued
// keys, "fwmark"/"fwmask" as hex strings (no "fwmask" when it is
// 0xffffffff), "src": "all" when there is no source selector, and
// non-lookup actions as "action" ("unreachable", "blackhole", "prohibit").
package route
