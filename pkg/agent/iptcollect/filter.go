package iptcollect

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// destFilter decides which jumps the walk follows: a rule that matches
// destinations (-d, a destination port, conntrack's original destination)
// is followed only when it can match one of the service's packets. It
// knows nothing of chain names.
type destFilter struct {
	// all: no target was given, every jump is followed.
	all   bool
	cands []cand
}

// cand is one kind of packet of the service: its destination address
// (invalid: any), destination port (0: any) and protocol (0: any).
type cand struct {
	ip    netip.Addr
	port  uint16
	proto int
}

func newDestFilter(targets []agentapi.Target, nodePorts []agentapi.PortProto, v6 bool) *destFilter {
	f := &destFilter{all: len(targets) == 0 && len(nodePorts) == 0}
	proto := func(p string) int {
		if p == "" {
			return 0
		}
		n, ok := iptables.ProtocolNumber(strings.ToLower(p))
		if !ok {
			return 0
		}
		return n
	}
	port := func(p int) uint16 {
		if p <= 0 || p > 65535 {
			return 0
		}
		return uint16(p)
	}
	for _, t := range targets {
		c := cand{port: port(t.Port), proto: proto(t.Protocol)}
		if t.IP != "" {
			a, err := netip.ParseAddr(t.IP)
			if err != nil {
				continue
			}
			a = a.Unmap()
			if a.Is6() != v6 {
				continue // the other family's rules
			}
			c.ip = a
		}
		f.cands = append(f.cands, c)
	}
	for _, np := range nodePorts {
		// A NodePort is reached on any local address.
		f.cands = append(f.cands, cand{port: port(np.Port), proto: proto(np.Protocol)})
	}
	return f
}

// follow tells whether the jump of r can be taken by one of the
// service's packets.
func (f *destFilter) follow(r *iptables.Rule) bool {
	if f.all {
		return true
	}
	var (
		dports   []*iptables.PortSpec
		mports   []*iptables.MultiportMatch
		modProto []int
		ctDst    []*iptables.AddrMatch
		ctDPort  []*iptables.PortSpec
	)
	specific := r.Destination != nil
	for i := range r.Matches {
		m := &r.Matches[i]
		if m.Ports != nil && m.Ports.DPort != nil {
			dports = append(dports, m.Ports.DPort)
			if n, ok := iptables.ProtocolNumber(m.Module); ok {
				modProto = append(modProto, n)
			}
			specific = true
		}
		if m.Multiport != nil && m.Multiport.Direction == "dst" {
			mports = append(mports, m.Multiport)
			specific = true
		}
		if ct := m.Conntrack; ct != nil {
			if ct.OrigDst != nil {
				ctDst = append(ctDst, ct.OrigDst)
				specific = true
			}
			if ct.OrigDstPort != nil {
				ctDPort = append(ctDPort, ct.OrigDstPort)
				specific = true
			}
		}
	}
	if !specific {
		return true
	}
	for _, c := range f.cands {
		if c.ip.IsValid() {
			if r.Destination != nil && !r.Destination.Matches(c.ip) {
				continue
			}
			if !allAddr(ctDst, c.ip) {
				continue
			}
		}
		if c.proto != 0 {
			if p := r.Protocol; p != nil && p.Number >= 0 && !p.Matches(c.proto) {
				continue
			}
			if !allEqual(modProto, c.proto) {
				continue
			}
		}
		if c.port != 0 {
			if !allPorts(dports, c.port) || !allPorts(ctDPort, c.port) {
				continue
			}
			ok := true
			for _, mp := range mports {
				if !mp.Matches(0, c.port) {
					ok = false
				}
			}
			if !ok {
				continue
			}
		}
		return true
	}
	return false
}

func allAddr(ms []*iptables.AddrMatch, a netip.Addr) bool {
	for _, m := range ms {
		if !m.Matches(a) {
			return false
		}
	}
	return true
}

func allPorts(ps []*iptables.PortSpec, p uint16) bool {
	for _, s := range ps {
		if !s.Matches(p) {
			return false
		}
	}
	return true
}

func allEqual(ns []int, n int) bool {
	for _, x := range ns {
		if x != n {
			return false
		}
	}
	return true
}

// rejectFast tells, from the raw line alone, that the rule can match none
// of the service's packets, so that the rules of chains like KUBE-SERVICES
// and KUBE-NODEPORTS (one or two per service) need not all be parsed. It
// reads "-d ADDR" when it comes before any quoted text (iptables prints -s
// and -d before the matches) and a plain "--dport PORT[:PORT]" after the
// last quote, and returns false whenever unsure.
func (f *destFilter) rejectFast(line string) bool {
	if f.all {
		return false
	}
	var (
		pfx    netip.Prefix
		hasDst bool
		neg    bool
	)
	if i := strings.Index(line, " -d "); i >= 0 {
		if q := strings.IndexByte(line, '"'); q < 0 || q > i {
			v := word(line[i+4:])
			p, err := netip.ParsePrefix(v)
			if err != nil {
				if a, err := netip.ParseAddr(v); err == nil {
					p, err = netip.PrefixFrom(a, a.BitLen()), nil
				}
			}
			if err == nil {
				pfx, hasDst, neg = p, true, strings.HasSuffix(line[:i], " !")
			}
		}
	}
	var lo, hi uint16
	hasPort := false
	tail := line
	if q := strings.LastIndexByte(line, '"'); q >= 0 {
		tail = line[q:]
	}
	if i := strings.Index(tail, " --dport "); i >= 0 && !strings.HasSuffix(tail[:i], " !") && !strings.Contains(tail[i+1:], " --dport ") {
		lo, hi, hasPort = portRange(word(tail[i+9:]))
	}
	if !hasDst && !hasPort {
		return false
	}
	for _, c := range f.cands {
		if hasDst && c.ip.IsValid() && pfx.Contains(c.ip) == neg {
			continue // this packet's address does not match
		}
		if hasPort && c.port != 0 && (c.port < lo || c.port > hi) {
			continue // nor its port
		}
		return false
	}
	return true
}

// word is s up to the first space.
func word(s string) string {
	if j := strings.IndexByte(s, ' '); j >= 0 {
		return s[:j]
	}
	return s
}

// portRange reads "P" or "P:Q".
func portRange(s string) (lo, hi uint16, ok bool) {
	a, b, isRange := strings.Cut(s, ":")
	pa, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, false
	}
	pb := pa
	if isRange {
		if pb, err = strconv.ParseUint(b, 10, 16); err != nil || pb < pa {
			return 0, 0, false
		}
	}
	return uint16(pa), uint16(pb), true
}
