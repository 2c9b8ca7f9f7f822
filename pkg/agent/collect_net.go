package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"

	"github.com/svcpath/kubectl-svcpath/pkg/agent/ctcollect"
	"github.com/svcpath/kubectl-svcpath/pkg/agent/iptcollect"
	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// Node file names (the snapshot layout, docs/snapshot.md). They are spelled
// here so that the agent does not import pkg/snapshot (and the Kubernetes
// API types with it); a test checks that they match.
const (
	fileIPTablesSave  = "iptables-save"
	fileIP6TablesSave = "ip6tables-save"
	fileIPRoute       = "ip-route"
	fileIPRule        = "ip-rule"
	fileIPLink        = "ip-link"
	fileIPAddr        = "ip-addr"
	fileConntrack     = "conntrack"
	fileSysctl        = "sysctl"
	fileNFTRuleset    = "nft-list-ruleset"
	filePodInterfaces = "pod-interfaces"
)

// collectIPTables reads the IPv4 rules (and the IPv6 ones when the
// service has IPv6 addresses, or for a full dump) with the backend
// kube-proxy uses.
func collectIPTables(ctx context.Context, c *collection, doc *agentapi.Document) error {
	run, binaries := c.env.Run, "image"
	if c.env.HostRun != nil {
		run, binaries = c.env.HostRun, "host"
	}
	families := []bool{false}
	if c.req.Full || hasIPv6(c.req) {
		families = append(families, true)
	}
	var errs []error
	for _, v6 := range families {
		res, err := iptcollect.Collect(ctx, iptcollect.Options{
			Run: run, IPv6: v6, Targets: c.req.Targets, NodePorts: c.req.NodePorts, Full: c.req.Full,
		})
		name := fileIPTablesSave
		if v6 {
			name = fileIP6TablesSave
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		c.put(name, string(res.Save))
		if !v6 {
			c.mu.Lock()
			doc.IPTablesBackend, doc.IPTablesBinaries = res.Backend, binaries
			doc.Partial = res.Partial
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// collectIP runs the four ip commands the snapshot layout names.
func collectIP(ctx context.Context, c *collection) error {
	var errs []error
	for _, cmd := range []struct {
		file string
		args []string
	}{
		{fileIPRoute, []string{"-j", "route", "show", "table", "all"}},
		{fileIPRule, []string{"-j", "rule"}},
		{fileIPLink, []string{"-j", "-d", "link"}},
		{fileIPAddr, []string{"-j", "addr"}},
	} {
		out, err := c.env.Run(ctx, "ip", cmd.args...)
		if err != nil {
			errs = append(errs, fmt.Errorf("ip %s: %w", strings.Join(cmd.args, " "), err))
			continue
		}
		c.put(cmd.file, string(out))
	}
	return errors.Join(errs...)
}

// collectNFT reads kube-proxy's nftables tables (ip and ip6 kube-proxy)
// when they exist; the whole ruleset only for a full collection. Tables of
// the iptables-nft backend are left to the iptables collector.
func collectNFT(ctx context.Context, c *collection) error {
	if c.req.Full {
		out, err := c.env.Run(ctx, "nft", "list", "ruleset")
		if err != nil {
			return fmt.Errorf("nft list ruleset: %w", err)
		}
		c.put(fileNFTRuleset, string(out))
		return nil
	}
	// The table names come over netlink: `nft list tables` first
	// downloads every set of every table (seconds, hundreds of MB on a
	// node whose iptables-nft tables hold 10,000 services).
	tables, err := kubeProxyTables()
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", err)
	}
	var b strings.Builder
	for _, fam := range tables {
		t, err := c.env.Run(ctx, "nft", "list", "table", fam, "kube-proxy")
		if err != nil {
			return fmt.Errorf("nft list table %s kube-proxy: %w", fam, err)
		}
		b.Write(t)
	}
	c.put(fileNFTRuleset, b.String())
	return nil
}

// collectConntrack writes the service's flows and the table statistics.
func collectConntrack(ctx context.Context, c *collection) error {
	var b strings.Builder
	stats, err := ctcollect.Collect(ctx, ctcollect.Options{
		Targets: c.req.Targets, All: c.req.Full, Limit: c.req.ConntrackLimit,
	}, &b)
	// A failure of one part (the statistics, one dump) keeps what was
	// read: the error is reported next to it.
	if b.Len() > 0 || err == nil {
		c.put(fileConntrack, b.String())
	}
	if stats.Max > 0 || err == nil {
		if js, jerr := marshal(stats); jerr == nil {
			c.put(agentapi.FileConntrackStats, js)
		}
	}
	return err
}

// podNetns is one pod network namespace seen through /proc.
type podNetns struct {
	path  string // /proc/PID/ns/net
	inode uint64
	pid   int
	ips   []netip.Addr
	// ifindex and iflink of the pod's eth0.
	ifindex, iflink int
}

// podInterface is one entry of the pod-interfaces file.
type podInterface struct {
	IP      string `json:"ip"`
	IfIndex int    `json:"ifindex"`
	IfLink  int    `json:"iflink"`
	PID     int    `json:"pid,omitempty"`
	Netns   uint64 `json:"netns,omitempty"`
}

// collectPodInterfaces finds every network namespace other than the
// agent's own through /proc/*/ns/net (the probe runs with hostPID) and
// reads its eth0: addresses, ifindex, and iflink (the host-side veth).
func collectPodInterfaces(ctx context.Context, c *collection) error {
	nss, err := scanNetns(ctx, c.env.Proc)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.podNetns = nss
	c.mu.Unlock()
	out := []podInterface{}
	for _, ns := range nss {
		for _, ip := range ns.ips {
			out = append(out, podInterface{IP: ip.String(), IfIndex: ns.ifindex, IfLink: ns.iflink, PID: ns.pid, Netns: ns.inode})
		}
	}
	js, err := marshal(out)
	if err != nil {
		return err
	}
	c.put(filePodInterfaces, js)
	return nil
}

// procPIDs lists the numeric entries of a procfs root.
func procPIDs(proc string) ([]int, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// toAddr is net.IP to netip.Addr, unmapped.
func toAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// kubeProxyTables returns the families ("ip", "ip6") that have a table
// named kube-proxy (kube-proxy's nftables mode), read over netlink.
func kubeProxyTables() ([]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, err
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tables {
		if t.Name != "kube-proxy" {
			continue
		}
		switch t.Family {
		case nftables.TableFamilyIPv4:
			out = append(out, "ip")
		case nftables.TableFamilyIPv6:
			out = append(out, "ip6")
		}
	}
	sort.Strings(out)
	return out, nil
}
