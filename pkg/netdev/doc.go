// Package netdev parses a node's network devices and addresses from the JSON
// that iproute2 prints (`ip -j -d link`, `ip -j addr`) and answers the
// questions an explanation needs about them: which interface has this name or
// index, which addresses does it hold (primary first, in the kernel's order),
// which host-side interface leads to a pod, is a bridge port in hairpin mode,
// where does a tunnel go, and what kind of device is it ("pod veth",
// "bridge", "IPIP tunnel", ...).
//
// The package is a pure parser: it never runs commands. Its input is the raw
// output stored in a snapshot (nodes/<node>/ip-link and nodes/<node>/ip-addr).
//
// Facts about iproute2's JSON that this package relies on, checked against
// iproute2 6.1 on Linux 6.18 by the package's kernel tests:
//
//   - A veth whose peer is in the same network namespace carries the peer's
//     name in "link"; a veth whose peer is in another namespace (a pod's
//     eth0) carries the peer's ifindex in "link_index" and the peer
//     namespace's id in "link_netnsid" instead, and no "link". A device
//     whose IFLA_LINK is 0 (the fallback tunl0) prints "link": null.
//   - A bridge port prints linkinfo.info_slave_kind "bridge" and its port
//     settings in linkinfo.info_slave_data, where hairpin mode is the JSON
//     boolean "hairpin" (true/false). The port's "master" is the bridge.
//   - `ip -j addr` lists each device's addresses in the kernel's list order:
//     primary addresses come before the secondaries of the same subnet (a
//     secondary prints "secondary": true), and a new primary of a wider
//     scope is inserted before narrower ones.
//
// Source address selection (Set.SelectSource) follows the kernel's
// inet_select_addr (net/ipv4/devinet.c) for IPv4; see its comment.
package netdev
