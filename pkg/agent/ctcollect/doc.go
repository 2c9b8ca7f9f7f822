// Package ctcollect is the node agent's conntrack collector: it reads the
// kernel's connection-tracking table over ctnetlink and writes the flows a
// question about one Service needs as `conntrack -L` lines (the text
// conntrack-tools 1.4.7 prints, which pkg/ctflow parses), plus the table's
// fill and per-CPU counters.
//
// The table can hold hundreds of thousands of entries, so the collector
// never holds it in memory:
//
//   - A Target selects the flows whose original destination is its
//     address (and protocol and port when set), whatever its Role: flows
//     sent to a ClusterIP, external, load-balancer or node address on the
//     service's ports, DNATed or not, and flows sent to an endpoint's
//     address. An endpoint's own outgoing connections are not selected
//     unless sent to a target.
//   - The kernel filters the dumps itself with CTA_FILTER (Linux 5.8+,
//     net/netfilter/nf_conntrack_netlink.c ctnetlink_alloc_filter and
//     ctnetlink_filter_match_tuple), so only matching entries cross into
//     user space. It still walks its whole hash table for each dump
//     (about a tenth of the cost of reading the whole table), so the
//     selections are merged into as few dumps as the filter allows: one
//     per distinct protocol and TCP or UDP destination port of a family,
//     on protocol and port alone when several addresses share them (the
//     filter then reads and compares no address), and one per address for
//     targets without a port. A ClusterIP on port 80 and its endpoints on
//     8080 make two dumps, run concurrently; past a dozen dumps one
//     unfiltered dump is read instead.
//   - Dumps are read as a stream from a raw netlink socket, one datagram at
//     a time into a reused buffer. Each message's tuples are read in place;
//     only messages that match are decoded (ti-mo/conntrack
//     Event.Unmarshal) and formatted.
//   - The exact selections are always applied again in Go to what a dump
//     returns. A kernel that ignores CTA_FILTER (older than 5.8) answers
//     with the whole table and without NLM_F_DUMP_FILTERED; one whose
//     filter is wrong sends entries that do not match (the IPv6 address
//     comparison is inverted up to at least Linux 6.18, so IPv6 port
//     filters never carry an address). The collector notices either,
//     reads the address family in one unfiltered dump filtered in Go for
//     all its selections at once, and reports KernelFiltered=false.
//
// The lines are those conntrack -L prints (see FormatFlow for the layout),
// compared field for field with conntrack-tools 1.4.7 by the kernel tests.
//
// Flows are deduplicated by conntrack id across dumps, and at most
// Options.Limit are written.
package ctcollect
