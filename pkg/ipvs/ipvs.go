// Package ipvs reads the IPVS state of a node as `ipvsadm -Ln` prints it
// (virtual services, their scheduler and persistence, real servers with
// forwarding method and weight) and the `ipset save` output that kube-proxy's
// IPVS mode matches in its iptables rules.
package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Service is one virtual service.
type Service struct {
	// Protocol is TCP, UDP or SCTP (FWM for firewall-mark services).
	Protocol string
	Addr     netip.AddrPort
	// FWMark is set for FWM services.
	FWMark    uint32
	Scheduler string
	// Persistent is the persistence timeout in seconds (session affinity),
	// 0 without.
	Persistent int
	Flags      []string
	Reals      []Real
	// Line is the line of the service in the listing; Text the line.
	Line int
	Text string
}

// Real is one real server (backend).
type Real struct {
	Addr     netip.AddrPort
	Forward  string // Masq, Route, Tunnel, ...
	Weight   int
	Active   int
	Inactive int
	Line     int
	Text     string
}

// State is a parsed listing.
type State struct {
	Services []*Service
}

// Lookup returns the virtual service of proto and addr (nil if none).
func (s *State) Lookup(proto string, addr netip.AddrPort) *Service {
	if s == nil {
		return nil
	}
	for _, v := range s.Services {
		if strings.EqualFold(v.Protocol, proto) && v.Addr == addr {
			return v
		}
	}
	return nil
}

// ParseError is an error of the listing's syntax.
type ParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("ipvsadm listing line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// Parse reads `ipvsadm -Ln` (numeric) output.
func Parse(data []byte) (*State, error) {
	st := &State{}
	var cur *Service
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		l := strings.TrimRight(raw, "\r")
		t := strings.TrimSpace(l)
		f := strings.Fields(t)
		switch {
		case t == "":
		case strings.HasPrefix(t, "IP Virtual Server"), strings.HasPrefix(t, "Prot "), strings.HasPrefix(t, "-> RemoteAddress"):
		case f[0] == "->":
			if cur == nil {
				return nil, &ParseError{line, l, "real server before any virtual service"}
			}
			if len(f) < 3 {
				return nil, &ParseError{line, l, "real server line too short"}
			}
			ap, err := parseAddrPort(f[1])
			if err != nil {
				return nil, &ParseError{line, l, err.Error()}
			}
			r := Real{Addr: ap, Forward: f[2], Line: line, Text: t}
			nums := []*int{&r.Weight, &r.Active, &r.Inactive}
			for k, p := range nums {
				if 3+k < len(f) {
					n, err := strconv.Atoi(f[3+k])
					if err != nil {
						return nil, &ParseError{line, l, "not a number: " + f[3+k]}
					}
					*p = n
				}
			}
			cur.Reals = append(cur.Reals, r)
		case f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM":
			if len(f) < 3 {
				return nil, &ParseError{line, l, "virtual service line too short"}
			}
			v := &Service{Protocol: f[0], Scheduler: f[2], Line: line, Text: t}
			if f[0] == "FWM" {
				n, err := strconv.ParseUint(f[1], 0, 32)
				if err != nil {
					return nil, &ParseError{line, l, "bad firewall mark"}
				}
				v.FWMark = uint32(n)
			} else {
				ap, err := parseAddrPort(f[1])
				if err != nil {
					return nil, &ParseError{line, l, err.Error()}
				}
				v.Addr = ap
			}
			for k := 3; k < len(f); k++ {
				if f[k] == "persistent" && k+1 < len(f) {
					n, err := strconv.Atoi(f[k+1])
					if err != nil {
						return nil, &ParseError{line, l, "bad persistence timeout"}
					}
					v.Persistent = n
					k++
					continue
				}
				v.Flags = append(v.Flags, f[k])
			}
			st.Services = append(st.Services, v)
			cur = v
		default:
			return nil, &ParseError{line, l, "not an ipvsadm -Ln line"}
		}
	}
	return st, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q (ipvsadm -Ln prints IP:PORT, [IPv6]:PORT)", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Shares returns each real server's share of new connections: weight over
// the sum of weights (rr and wrr spread by weight; other schedulers by load,
// for which this is the share of an idle service). Weight 0 takes no new
// connection (kube-proxy sets it for terminating endpoints).
func (v *Service) Shares() map[netip.AddrPort]float64 {
	total := 0
	for _, r := range v.Reals {
		if r.Weight > 0 {
			total += r.Weight
		}
	}
	out := map[netip.AddrPort]float64{}
	for _, r := range v.Reals {
		if r.Weight > 0 && total > 0 {
			out[r.Addr] += float64(r.Weight) / float64(total)
		}
	}
	return out
}

// WeightedByLoad tells whether the scheduler balances by load rather than
// by weight alone (the shares are then only those of an idle service).
func (v *Service) WeightedByLoad() bool {
	switch v.Scheduler {
	case "rr", "wrr":
		return false
	}
	return true
}
