package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// sysctlKeys are the settings that break services, read from /proc/sys.
// Per-interface rp_filter and route_localnet are added for every
// interface.
var sysctlKeys = []string{
	"net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.ipv4.conf.all.rp_filter",
	"net.ipv4.conf.default.rp_filter",
	"net.ipv4.conf.all.route_localnet",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_count",
	"net.netfilter.nf_conntrack_buckets",
	"net.netfilter.nf_conntrack_tcp_be_liberal",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_udp_timeout",
	"net.ipv4.vs.conntrack",
	"net.ipv4.vs.conn_reuse_mode",
	"net.ipv4.vs.expire_nodest_conn",
}

// collectSysctls writes the sysctl file in `sysctl -a` form ("key = value"),
// sorted; settings absent from this kernel (no br_netfilter, no IPVS) are
// left out, which says as much.
func collectSysctls(ctx context.Context, c *collection) error {
	root := filepath.Join(c.env.Proc, "sys")
	keys := append([]string(nil), sysctlKeys...)
	if ifaces, err := os.ReadDir(filepath.Join(root, "net", "ipv4", "conf")); err == nil {
		for _, e := range ifaces {
			if n := e.Name(); n != "all" && n != "default" {
				keys = append(keys, "net.ipv4.conf."+n+".rp_filter", "net.ipv4.conf."+n+".route_localnet")
			}
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		// Interface names may hold dots (eth0.100): the path keeps them.
		v, err := os.ReadFile(filepath.Join(root, sysctlPath(k)))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", k, strings.Join(strings.Fields(string(v)), "\t"))
	}
	c.put(fileSysctl, b.String())
	return ctx.Err()
}

// sysctlPath turns a key into its path under /proc/sys. The interface
// part of net.ipv4.conf.IFACE.KEY keeps its dots.
func sysctlPath(key string) string {
	const conf = "net.ipv4.conf."
	if strings.HasPrefix(key, conf) {
		rest := key[len(conf):]
		if i := strings.LastIndex(rest, "."); i > 0 {
			return filepath.Join("net", "ipv4", "conf", rest[:i], rest[i+1:])
		}
	}
	return strings.ReplaceAll(key, ".", "/")
}

// collectHealth asks kube-proxy's health endpoint on the node. No answer
// is data (kube-proxy down, or another proxy), not an error.
func collectHealth(ctx context.Context, c *collection) error {
	url := c.req.HealthzURL
	if url == "" {
		url = agentapi.DefaultHealthzURL
	}
	h := agentapi.ProxyHealth{URL: url}
	// kube-proxy answers from the node itself in milliseconds; a full
	// conntrack table makes the connection hang, so do not wait long.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		h.Error = err.Error()
	} else {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		h.StatusCode = resp.StatusCode
		h.Body = string(body)
		var fields struct {
			LastUpdated string `json:"lastUpdated"`
			CurrentTime string `json:"currentTime"`
		}
		if json.Unmarshal(body, &fields) == nil {
			h.LastUpdated, h.CurrentTime = fields.LastUpdated, fields.CurrentTime
		}
	}
	h.Processes, h.ProcessesScanned = findProcesses("/proc", "kube-proxy")
	js, err := marshal(h)
	if err != nil {
		return err
	}
	c.put(agentapi.FileProxyHealth, js)
	return nil
}

// collectIPVS reads the kernel's IPVS table (/proc/net/ip_vs of the
// agent's namespace) and writes it as `ipvsadm -Ln` prints it. No IPVS
// module means no file.
func collectIPVS(ctx context.Context, c *collection) error {
	b, err := os.ReadFile("/proc/self/net/ip_vs")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	out, err := IPVSText(b)
	if err != nil {
		return err
	}
	c.put(agentapi.FileIPVS, out)
	return ctx.Err()
}

// IPVSText converts /proc/net/ip_vs (hexadecimal addresses and ports) to
// the text of `ipvsadm -Ln`.
func IPVSText(proc []byte) (string, error) {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(proc))
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		f := strings.Fields(s)
		switch {
		case line <= 2 || strings.HasPrefix(strings.TrimSpace(s), "-> RemoteAddress"):
			if strings.HasPrefix(strings.TrimSpace(s), "-> RemoteAddress") {
				b.WriteString("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
			} else {
				b.WriteString(s + "\n")
			}
		case len(f) >= 2 && f[0] == "->":
			if len(f) < 5 {
				return "", fmt.Errorf("ip_vs line %d: %q: too few fields", line, s)
			}
			addr, err := hexAddrPort(f[1])
			if err != nil {
				return "", fmt.Errorf("ip_vs line %d: %w", line, err)
			}
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6s %-10s %s\n", addr, f[2], f[3], f[4], strings.Join(f[5:], " "))
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP"):
			addr, err := hexAddrPort(f[1])
			if err != nil {
				return "", fmt.Errorf("ip_vs line %d: %w", line, err)
			}
			fmt.Fprintf(&b, "%-4s %s %s\n", f[0], addr, strings.Join(f[2:], " "))
		case len(f) >= 3 && f[0] == "FWM":
			var mark uint32
			if _, err := fmt.Sscanf(f[1], "%x", &mark); err != nil {
				return "", fmt.Errorf("ip_vs line %d: firewall mark %q: %v", line, f[1], err)
			}
			fmt.Fprintf(&b, "FWM  %d %s\n", mark, strings.Join(f[2:], " "))
		case strings.TrimSpace(s) == "":
		default:
			return "", fmt.Errorf("ip_vs line %d: unexpected %q", line, s)
		}
	}
	return b.String(), sc.Err()
}

// hexAddrPort decodes "0A600001:01BB" or "[2001:0db8:...]:01BB".
func hexAddrPort(s string) (string, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", fmt.Errorf("address %q has no port", s)
	}
	var port uint16
	if _, err := fmt.Sscanf(s[i+1:], "%x", &port); err != nil {
		return "", fmt.Errorf("port of %q: %v", s, err)
	}
	host := s[:i]
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if err != nil {
			return "", fmt.Errorf("address %q: %v", host, err)
		}
		return netip.AddrPortFrom(a, port).String(), nil
	}
	var v uint32
	if len(host) != 8 {
		return "", fmt.Errorf("address %q is not 8 hexadecimal digits", host)
	}
	if _, err := fmt.Sscanf(host, "%x", &v); err != nil {
		return "", fmt.Errorf("address %q: %v", host, err)
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff, port), nil
}

func marshal(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

// findProcesses lists the processes under procRoot whose command name
// (/proc/PID/comm) is name. ok is false when procRoot cannot be read.
// Processes that exit while being read are skipped.
func findProcesses(procRoot, name string) (found []agentapi.ProxyProcess, ok bool) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if len(cmd) > 512 {
			cmd = cmd[:512]
		}
		line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		found = append(found, agentapi.ProxyProcess{PID: pid, Cmdline: line})
	}
	return found, true
}
