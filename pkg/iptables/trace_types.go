package iptables

import "net/netip"

// Hook is the netfilter hook a packet enters the rules at.
type Hook string

// Hooks a traced packet can start at.
const (
	// HookPrerouting: a packet arriving on an interface (from a pod's host
	// veth, from the network).
	HookPrerouting Hook = "PREROUTING"
	// HookOutput: a packet sent by a process of the host's network
	// namespace.
	HookOutput Hook = "OUTPUT"
)

// Packet is the first packet of a new connection, as traced.
type Packet struct {
	Src, Dst     netip.Addr
	Protocol     string // "tcp", "udp", "sctp", "icmp" (lower case)
	SPort, DPort uint16
	// InInterface is the input interface (PREROUTING); empty if unknown.
	InInterface string
	// Mark is the packet mark when it enters the hook.
	Mark uint32
}

// Env describes the node, for matches whose result depends on it.
type Env struct {
	// LocalAddrs are the node's own addresses (addrtype LOCAL, and whether
	// a DNATed packet is delivered locally: INPUT, or forwarded: FORWARD).
	LocalAddrs []netip.Addr
	// OutInterface tells the egress interface of a destination (for -o
	// matches in FORWARD/OUTPUT/POSTROUTING). Nil or "" means unknown; an
	// -o match on an unknown interface is treated as not matching and
	// reported in Outcome.Uncertain.
	OutInterface func(dst netip.Addr) string
	// SkipFilter disables the filter table walk (nat only).
	SkipFilter bool
	// IPSets are the ipset members for -m set matches (nil: such matches
	// are uncertain).
	IPSets *IPSets
}

// Verdict is the fate of the traced packet.
type Verdict string

// Verdicts.
const (
	VerdictAccept Verdict = "ACCEPT"
	VerdictDrop   Verdict = "DROP"
	VerdictReject Verdict = "REJECT"
)

// TraceStep is one rule the packet matched (or one policy it fell to), in
// the order the kernel meets them.
type TraceStep struct {
	Table string
	Chain string
	// Rule is nil for a chain policy step.
	Rule *Rule
	// Action: "jump", "goto", "return", "dnat", "snat", "masquerade",
	// "mark", "accept", "drop", "reject", "policy", "other".
	Action string
	// Probability is the share of traced connections that reach this step.
	Probability float64
}

// SNAT says how POSTROUTING rewrites the source.
type SNAT struct {
	// Kind is "MASQUERADE" or "SNAT".
	Kind string
	// ToSource is SNAT's --to-source, empty for MASQUERADE.
	ToSource string
	// Rule is the rule that source-NATed; Chain the chain holding it.
	Rule  *Rule
	Chain string
	// ViaChains lists the user chains traversed from POSTROUTING down to
	// Chain (e.g. KUBE-POSTROUTING, or CNI-xxxx), so callers can tell
	// kube-proxy's masquerade from a CNI's.
	ViaChains []string
}

// Outcome is one branch of the distribution of a traced connection.
type Outcome struct {
	// Probability of this branch, 0..1; the Outcomes of a Trace sum to 1.
	Probability float64
	Verdict     Verdict
	// DNAT is the destination after DNAT; invalid (zero) if none happened.
	DNAT netip.AddrPort
	// DNATRule is the rule that DNATed, DNATChain its chain.
	DNATRule  *Rule
	DNATChain string
	// Mark is the packet mark at the end of the nat hook (before
	// POSTROUTING clears anything), e.g. 0x4000 when marked for masquerade.
	Mark uint32
	// SNAT is set when POSTROUTING source-NATs the packet.
	SNAT *SNAT
	// Reject, when Verdict is REJECT, is the --reject-with value.
	RejectWith string
	// Steps is the evidence: the matched rules of all tables in kernel
	// order (nat PREROUTING/OUTPUT, filter INPUT/FORWARD/OUTPUT, nat
	// POSTROUTING).
	Steps []TraceStep
	// Delivered is "local" (INPUT: the destination is a node address) or
	// "forward" (FORWARD) or "output" (locally generated, sent out).
	Delivered string
	// Uncertain lists matches that could not be evaluated exactly
	// (unknown module, unknown interface) and were taken as not matching.
	Uncertain []string
	// Affinity is set when a `recent` match (sessionAffinity ClientIP)
	// was met; Affinity names the recent list and its timeout in seconds.
	Affinity []Affinity
}

// Affinity is a sessionAffinity (xt_recent) rule seen on the path.
type Affinity struct {
	Name    string
	Seconds int
	Rule    *Rule
	// Op is the recent operation: "rcheck", "update" (checks, which a new
	// client fails), "set" (records the client), "remove".
	Op string
	// Chain holds Rule.
	Chain string
}

// Trace is the full distribution of outcomes for a packet.
type Trace struct {
	Hook     Hook
	Packet   Packet
	Outcomes []Outcome
	// Warnings: loops found, jumps to chains that do not exist, missing
	// tables.
	Warnings []string
	// MissingChains lists jump/goto targets that are not declared.
	MissingChains []string
}
