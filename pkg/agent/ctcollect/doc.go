// Package ctcollect is the node agent's conntrack collector: it reads the
// kernel's connection-tracking table over ctnetlink and writes the flows a
// question about one Service needs as `conntrack -L` lines (the text
// conntrack-tools 1.4.7 prints, which pkg/ctflow parses), plus the table's
// fill and per-CPU counters.
//
// The table can hold hundreds of thousands of entries, so the collector
// never holds it in memory:
//
//   - Each selection (a Target's address as original destination, and for
//     endpoints also as reply source and original source) is one dump the
//     kernel filters itself with CTA_FILTER (Linux 5.8+,
//     net/netfilter/nf_conntrack_netlink.c ctnetlink_alloc_filter and
//     ctnetlink_filter_match_tuple), so only matching entries cross into
//     user space.
//   - Dumps are read as a stream from a raw netlink socket, one datagram at
//     a time into a reused buffer. Each message's tuples are read in place;
//     only messages that match are decoded (ti-mo/conntrack
//     Event.Unmarshal) and formatted.
//   - The same selection is always applied again in Go. A kernel that
//     ignores CTA_FILTER (older than 5.8) answers with the whole table and
//     without NLM_F_DUMP_FILTERED; the collector notices, filters that dump
//     in Go for every selection of the address family at once, and reports
//     KernelFiltered=false.
//
// Flows are deduplicated by conntrack id across selections, and at most
// Options.Limit are written.
package ctcollect
