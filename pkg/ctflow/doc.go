// Package ctflow parses connection-tracking entries as `conntrack -L`
// prints them (also `conntrack -L -o extended`, `-o id`, `-o ktimestamp`,
// `/proc/net/nf_conntrack` and `conntrack -E` event lines) and derives the
// NAT facts an explanation needs: was the flow DNATed and to which endpoint,
// was it SNATed and to which address and port.
//
// A conntrack entry holds two tuples: the original direction (as the first
// packet looked before any NAT) and the reply direction (as the reply is
// expected to look, with the NAT applied). So:
//
//   - DNAT happened when the reply's source is not the original destination
//     (or the reply's source port is not the original destination port);
//     the reply's source is the new destination, e.g. the chosen endpoint
//     behind a Service's ClusterIP.
//   - SNAT happened when the reply's destination is not the original
//     source (or the ports differ); the reply's destination is the new
//     source, e.g. the node address MASQUERADE picked.
//
// Line layout (libnetfilter_conntrack src/conntrack/snprintf_default.c):
//
//	[l3name l3num] l4name l4num [timeout] [STATE]
//	src= dst= (sport= dport= | type= code= id= | srckey= dstkey=) [zone-orig=] [packets= bytes=] [UNREPLIED]
//	src= dst= (...)                                                [zone-reply=] [packets= bytes=]
//	[ASSURED|OFFLOAD|HW_OFFLOAD] [mark=] [secmark=] [secctx=] [zone=] [delta-time=] [helper=] [use=] [id=] [labels=]
//
// The timeout is absent for offloaded entries. Lines that conntrack prints
// around the entries ("conntrack v1.4.7 (conntrack-tools): 5 flow entries
// have been shown.") are skipped.
package ctflow
