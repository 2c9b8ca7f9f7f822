// Package iptables reads iptables-save output and evaluates its rules for
// one packet: what kube-proxy (and a CNI) really do to a connection.
//
// # Parsing
//
// Parse reads the output of iptables-save or ip6tables-save, with or
// without -c, in one cheap pass: it checks the structure (each "*table"
// ends with COMMIT, chains are declared with a policy and optional
// "[packets:bytes]" counters, every "-A CHAIN" names a declared chain) and
// indexes the rule lines of each chain. Rules are parsed only when a
// chain's rules are first asked for ((*Chain).Rules), once, safely for
// concurrent readers. On a kube-proxy node of 10,000 services (about
// 154,000 lines, 12 MB) Parse takes about 11 ms; tracing one service then
// parses KUBE-SERVICES and the few chains on the service's path. ParseStrict
// (or (*Dump).Validate) parses every rule and reports the first malformed
// line.
//
// A Dump keeps the input byte slice: the caller must not modify it after
// Parse. Errors are *ParseError values carrying the line number; they wrap
// ErrMalformed and, where it applies, ErrTruncated, ErrUndeclaredChain or
// ErrNoTable (use errors.Is).
//
// A Rule keeps its line (Raw, Line), its counters, its general parameters
// (Params: -s, -d, -p, -i, -o, -f, -4, -6, also in long forms), its matches
// in order (Matches) and its target (Target, "-j" or "-g"), each with the
// options verbatim, so that (*Rule).String re-serialises the line exactly
// as iptables-save printed it. Typed fields give the meaning of what
// kube-proxy and common CNIs use: addresses and prefixes (IPv4 and IPv6),
// protocols, interfaces (with the "+" wildcard), the comment, tcp, udp,
// sctp and multiport ports, mark and connmark, statistic (random, nth),
// recent, addrtype, conntrack and state, physdev, set, nfacct, limit, and
// the DNAT, SNAT, MASQUERADE, REDIRECT, MARK, CONNMARK and REJECT targets.
// An unknown match module, option or target is kept verbatim (its Unknown
// flag is set) and is never an error; a malformed value of a known option
// is.
//
// # Tracing
//
// (*Dump).Trace follows the first packet of a new connection from the
// PREROUTING hook (a packet arriving on an interface) or the OUTPUT hook (a
// packet of the node's own processes) through the nat table, the routing
// decision (local delivery when the destination is a node address), the
// filter table and nat POSTROUTING (or nat INPUT), following jumps, gotos
// and returns and applying the policies of the built-in chains. A statistic
// match splits the walk, so the result is the full distribution of
// outcomes: each DNAT destination with its probability, the packet mark,
// whether POSTROUTING source-NATs it (and through which chains, which tells
// kube-proxy's masquerade from a CNI's), drops and rejects, and the rules
// that led there. See Trace for the exact semantics: matches that cannot be
// evaluated from a dump (ipsets, sockets, bridge ports, unknown modules,
// unknown interfaces) make their rule not match and are reported in
// Outcome.Uncertain; loops, missing chains and exceeded bounds are reported
// in Trace.Warnings. The raw and mangle tables are not evaluated.
package iptables
