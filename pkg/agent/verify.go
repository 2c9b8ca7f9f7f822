package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agent/ctcollect"
	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// verifyTimeout bounds each connection of --verify.
const verifyTimeout = 3 * time.Second

// collectVerify makes each connection of the request, from the node's
// namespace or from the namespace of the local pod with FromPodIP, and
// reads the conntrack entry it created. It sends nothing but the
// connection: a TCP handshake (closed at once) or one empty UDP datagram.
func collectVerify(ctx context.Context, c *collection) error {
	results := make([]agentapi.VerifyResult, 0, len(c.req.Verify))
	for _, t := range c.req.Verify {
		results = append(results, verifyOne(ctx, c, t))
	}
	js, err := marshal(results)
	if err != nil {
		return err
	}
	c.put(agentapi.FileVerify, js)
	return nil
}

func verifyOne(ctx context.Context, c *collection, t agentapi.VerifyTarget) agentapi.VerifyResult {
	res := agentapi.VerifyResult{Target: t}
	fail := func(err error) agentapi.VerifyResult {
		res.Error = err.Error()
		return res
	}
	ip, err := netip.ParseAddr(t.IP)
	if err != nil {
		return fail(fmt.Errorf("bad address %q", t.IP))
	}
	dst := netip.AddrPortFrom(ip, uint16(t.Port))
	proto := strings.ToLower(t.Protocol)
	if proto != "tcp" && proto != "udp" {
		return fail(fmt.Errorf("protocol %s is not verified (TCP and UDP are)", t.Protocol))
	}
	nsPath := ""
	if t.FromPodIP != "" {
		from, err := netip.ParseAddr(t.FromPodIP)
		if err != nil {
			return fail(fmt.Errorf("bad pod address %q", t.FromPodIP))
		}
		c.mu.Lock()
		for _, ns := range c.podNetns {
			for _, a := range ns.ips {
				if a == from {
					nsPath = ns.path
				}
			}
		}
		c.mu.Unlock()
		if nsPath == "" {
			return fail(fmt.Errorf("no network namespace on this node has address %s", from))
		}
	}
	conn, took, err := dial(ctx, nsPath, proto, dst.String(), verifyTimeout)
	res.Micros = took.Microseconds()
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	if proto == "udp" {
		if _, err := conn.Write(nil); err != nil {
			return fail(fmt.Errorf("send: %w", err))
		}
	}
	local, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return fail(fmt.Errorf("local address %s: %w", conn.LocalAddr(), err))
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	res.Source = local.String()
	// The entry exists once the first packet went through the host's
	// netfilter; for UDP give it a moment.
	var line string
	for i := 0; i < 20; i++ {
		line, err = ctcollect.Lookup(ctcollect.Options{}, proto, local, dst)
		if err != nil || line != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		res.Error = fmt.Sprintf("conntrack lookup: %v", err)
	}
	res.Conntrack = line
	res.OK = err == nil && (proto == "tcp" || line != "")
	if proto == "udp" && line == "" && err == nil {
		res.Error = "no conntrack entry for the datagram"
	}
	return res
}
