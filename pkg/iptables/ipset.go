package iptables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// IPSets holds the members of ipsets as `ipset save` prints them, so that
// "-m set --match-set NAME FLAGS" can be evaluated (kube-proxy's IPVS mode
// matches KUBE-CLUSTER-IP, KUBE-LOOP-BACK, KUBE-NODE-PORT-*, ... this way).
type IPSets struct {
	sets map[string]*IPSet
}

// IPSet is one set.
type IPSet struct {
	Name string
	// Type is e.g. "hash:ip,port", "bitmap:port", "hash:net".
	Type    string
	Members []IPSetMember
	index   map[string]bool
	nets    []IPSetMember
}

// IPSetMember is one member: up to three dimensions (address or prefix,
// protocol and port, address).
type IPSetMember struct {
	Text  string
	Parts []string
}

// ParseIPSets reads `ipset save` (or `ipset list -o save`).
func ParseIPSets(data []byte) (*IPSets, error) {
	s := &IPSets{sets: map[string]*IPSet{}}
	for i, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "create", "-N", "-exist":
			if len(f) < 3 {
				return nil, fmt.Errorf("ipset save line %d: %q: create without a type", i+1, l)
			}
			s.sets[f[1]] = &IPSet{Name: f[1], Type: f[2], index: map[string]bool{}}
		case "add", "-A":
			if len(f) < 3 {
				return nil, fmt.Errorf("ipset save line %d: %q: add without a member", i+1, l)
			}
			set := s.sets[f[1]]
			if set == nil {
				return nil, fmt.Errorf("ipset save line %d: %q: set %s was not created", i+1, l, f[1])
			}
			m := IPSetMember{Text: f[2], Parts: strings.Split(f[2], ",")}
			set.Members = append(set.Members, m)
			key := normalizeMember(m.Parts)
			set.index[key] = true
			if strings.Contains(f[2], "/") {
				set.nets = append(set.nets, m)
			}
		}
	}
	return s, nil
}

// Set returns a set by name.
func (s *IPSets) Set(name string) *IPSet {
	if s == nil {
		return nil
	}
	return s.sets[name]
}

// normalizeMember writes a member's parts canonically ("10.0.0.1",
// "tcp:80").
func normalizeMember(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if a, err := netip.ParseAddr(p); err == nil {
			out[i] = a.Unmap().String()
			continue
		}
		out[i] = strings.ToLower(p)
	}
	return strings.Join(out, ",")
}

// Contains tells whether the set holds the member given by its dimensions
// (an address, "proto:port" or a bare port, an address).
func (s *IPSet) Contains(parts ...string) bool {
	if s.index[normalizeMember(parts)] {
		return true
	}
	// Prefix members (hash:net, hash:net,port, ...).
	for _, m := range s.nets {
		if len(m.Parts) != len(parts) {
			continue
		}
		ok := true
		for i, p := range m.Parts {
			if pre, err := netip.ParsePrefix(p); err == nil {
				a, err := netip.ParseAddr(parts[i])
				ok = ok && err == nil && pre.Contains(a.Unmap())
				continue
			}
			ok = ok && strings.EqualFold(p, parts[i])
		}
		if ok {
			return true
		}
	}
	return false
}

// evalSet evaluates "-m set --match-set NAME FLAGS" on the branch.
func (t *tracer) evalSet(b *branch, m *Match) (matchResult, float64, string) {
	sm := m.Set
	if sm == nil || t.env.IPSets == nil {
		return matchUncertain, 0, "-m set " + optionsText(m.Options) + ": the ipset members are not known"
	}
	set := t.env.IPSets.Set(sm.Name)
	if set == nil {
		// iptables refuses a rule naming a missing set: the set was
		// destroyed after the rule was written, or not collected.
		return matchUncertain, 0, "-m set: set " + sm.Name + " is not in the ipset data"
	}
	proto := protoName(t.proto)
	parts := make([]string, 0, len(sm.Flags))
	for i, fl := range sm.Flags {
		addr, port := b.dst, b.dport
		if fl == "src" {
			addr, port = b.src, b.sport
		}
		dim := dimension(set.Type, i)
		switch dim {
		case "port":
			if strings.HasPrefix(set.Type, "bitmap:port") {
				parts = append(parts, strconv.Itoa(int(port)))
			} else {
				parts = append(parts, proto+":"+strconv.Itoa(int(port)))
			}
		default:
			parts = append(parts, addr.String())
		}
	}
	return boolResult(set.Contains(parts...) != sm.Negated), 0, ""
}

// dimension names dimension i of a set type ("hash:ip,port,ip" -> ip, port,
// ip; net counts as ip).
func dimension(typ string, i int) string {
	_, dims, _ := strings.Cut(typ, ":")
	d := strings.Split(dims, ",")
	if i < len(d) {
		if d[i] == "port" {
			return "port"
		}
		return "ip"
	}
	return "ip"
}

func protoName(p int) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}
