package analyze

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// Node health: whether kube-proxy keeps the node's rules in sync
// (kube-proxy-healthz), whether the conntrack table has room
// (conntrack-stats), and the kernel settings the datapath needs (sysctl).
// Each check says nothing when its file is absent.

const (
	// kubeProxyMinSyncPeriod is kube-proxy's default minSyncPeriod
	// (--iptables-min-sync-period): the least time between two syncs, so
	// the delay a change may wait before its sync starts.
	kubeProxyMinSyncPeriod = time.Second
	// proxySyncGrace is how long after an EndpointSlice change kube-proxy
	// may still be writing it: a sync in progress is not PROXY-STALE.
	proxySyncGrace = 30*time.Second + kubeProxyMinSyncPeriod

	// conntrackFullRatio is the fill of the conntrack table (count/max)
	// at which CONNTRACK-TABLE-FULL fires; conntrackHighRatio the fill at
	// which a node note says the table is filling up.
	conntrackFullRatio = 0.90
	conntrackHighRatio = 0.75
)

// The sysctl keys checked, by address family.
var (
	forwardingKey = map[string]string{"IPv4": "net.ipv4.ip_forward", "IPv6": "net.ipv6.conf.all.forwarding"}
	bridgeNFKey   = map[string]string{"IPv4": "net.bridge.bridge-nf-call-iptables", "IPv6": "net.bridge.bridge-nf-call-ip6tables"}
)

// checkHealth runs the node health checks. They do not depend on the
// service except for its families and, for PROXY-STALE, the time its
// EndpointSlices last changed.
func (na *nodeAnalysis) checkHealth() {
	na.checkProxyHealth()
	na.checkConntrackStats()
	na.checkForwarding()
	na.checkBridgeNF()
}

// kubeProxyMode tells whether the node shows rules of a kube-proxy mode.
func kubeProxyMode(mode string) bool {
	return mode == ModeIPTables || mode == ModeNFTables || mode == ModeIPVS
}

func (na *nodeAnalysis) note(format string, args ...any) {
	na.out.Notes = append(na.out.Notes, fmt.Sprintf(format, args...))
}

// checkProxyHealth reads kube-proxy's healthz answer. A 503 is
// PROXY-STALE (kube-proxy itself says an update has waited longer than
// its health timeout), unless the node is only being deleted; a 200 is
// PROXY-STALE when its lastUpdated predates the newest change of the
// service's EndpointSlices by more than the grace window. No answer is
// PROXY-STALE when no kube-proxy process runs on the node, or when the
// node's rules already disagree with the EndpointSlices; otherwise a
// note: kube-proxy may be down, or serve its health elsewhere.
func (na *nodeAnalysis) checkProxyHealth() {
	h := na.st.ProxyHealth
	if h == nil {
		return
	}
	url := h.URL
	if url == "" {
		url = agentapi.DefaultHealthzURL
	}
	now, nowFrom := h.CurrentTime, "kube-proxy's currentTime"
	if now.IsZero() {
		now, nowFrom = na.st.CollectedAt, "the snapshot's collectedAt"
	}
	change, changeFrom := na.lastSliceChange()
	ev := []string{healthAnswer(url, h)}
	if !h.LastUpdated.IsZero() {
		ev = append(ev, "kube-proxy's last sync (lastUpdated): "+stamp(h.LastUpdated)+ago(now, h.LastUpdated, nowFrom))
	}
	if !change.IsZero() {
		ev = append(ev, "newest change of the service's EndpointSlices: "+stamp(change)+" ("+changeFrom+")")
	}
	hint := fmt.Sprintf("find kube-proxy's pod on the node (kubectl -n kube-system get pods -o wide -l k8s-app=kube-proxy --field-selector spec.nodeName=%s) and read its logs for failed syncs (iptables-restore errors, lost API connection, RBAC); on the node, curl %s shows lastUpdated; restarting kube-proxy forces a full sync", na.st.Name, url)
	switch {
	case h.StatusCode == 0:
		if !kubeProxyMode(na.out.Mode) {
			return
		}
		wrong := na.rulesDisagree()
		if h.ProcessesScanned && len(h.Processes) == 0 {
			msg := fmt.Sprintf("kube-proxy is not running on %s: its health endpoint %s does not answer and no kube-proxy process exists on the node, so the node's rules stay as it last wrote them and miss every Service and endpoint change since it stopped", na.st.Name, url)
			if len(wrong) > 0 {
				msg += "; they already disagree with the EndpointSlices (" + strings.Join(wrong, ", ") + ")"
			}
			ev = append(ev, "no process named kube-proxy in the node's /proc")
			na.finding(report.ProxyStale, "", "", msg, ev,
				fmt.Sprintf("find out why kube-proxy stopped: kubectl -n kube-system get pods -o wide -l k8s-app=kube-proxy --field-selector spec.nodeName=%s, then its previous logs (kubectl logs --previous); once it runs again it rewrites all rules in its first sync", na.st.Name))
			return
		}
		if len(wrong) > 0 {
			for _, p := range h.Processes {
				ev = append(ev, fmt.Sprintf("kube-proxy process %d: %s", p.PID, p.Cmdline))
			}
			na.finding(report.ProxyStale, "", "",
				fmt.Sprintf("kube-proxy's health endpoint %s on %s does not answer and the node's rules disagree with the EndpointSlices (%s): kube-proxy is not keeping them in sync (hung, crash-looping, or serving its health elsewhere while failing its syncs)", url, na.st.Name, strings.Join(wrong, ", ")),
				ev, hint)
			return
		}
		na.note("kube-proxy's health endpoint %s did not answer (%s): kube-proxy may be down, and then the node's rules stay as it last wrote them and miss every later endpoint change; or it serves its health on another address (healthzBindAddress). Whether its rules are in sync is unknown",
			url, orNone(h.Error))
		return
	case h.StatusCode == http.StatusServiceUnavailable:
		ineligible := h.NodeEligible != nil && !*h.NodeEligible
		if ineligible && !h.LastUpdated.IsZero() && !now.IsZero() && now.Sub(h.LastUpdated) <= proxySyncGrace {
			na.note("kube-proxy's health endpoint answers 503 because this node is being deleted or is tainted for deletion by the cluster autoscaler (nodeEligible false), not because its rules are late (last sync %s): load balancers health-checking it take the node out of rotation, by design",
				stamp(h.LastUpdated)+ago(now, h.LastUpdated, nowFrom))
			return
		}
		msg := fmt.Sprintf("kube-proxy on %s reports itself unhealthy (%s answered 503): a rules update has waited longer than its health timeout (twice its syncPeriod, 60s by default) without a successful sync, so the node's rules miss recent Service and endpoint changes", na.st.Name, url)
		if !h.LastUpdated.IsZero() {
			msg += "; its last successful sync was at " + stamp(h.LastUpdated) + ago(now, h.LastUpdated, nowFrom)
			if change.After(h.LastUpdated) {
				msg += "; this service's EndpointSlices changed after it, at " + stamp(change) + ", so its rules on this node are out of date"
			}
		}
		if ineligible {
			msg += " (kube-proxy also says the node is being deleted: nodeEligible false)"
		}
		na.finding(report.ProxyStale, "", "", msg, ev, hint)
		return
	case h.StatusCode != http.StatusOK:
		na.note("kube-proxy's health endpoint %s answered HTTP %d, which kube-proxy never does (it answers 200 or 503): something else listens there, and whether kube-proxy's rules are in sync is unknown", url, h.StatusCode)
		return
	}
	// 200: kube-proxy is healthy by its own measure. Its lastUpdated
	// still tells whether it has synced since the service changed (older
	// releases report the real time of the last sync).
	if h.LastUpdated.IsZero() || now.IsZero() || change.IsZero() {
		return
	}
	if !h.LastUpdated.Before(change) || now.Sub(change) <= proxySyncGrace {
		return
	}
	ev = append(ev, fmt.Sprintf("grace for a sync in progress: %s; %s since the change by %s", proxySyncGrace, now.Sub(change).Round(time.Second), nowFrom))
	na.finding(report.ProxyStale, "", "",
		fmt.Sprintf("kube-proxy on %s last synced its rules at %s, %s before the newest change of this service's EndpointSlices (%s), and has not synced in the %s since: the node's rules for the service are out of date (endpoints added since are never chosen, removed ones still get traffic)",
			na.st.Name, stamp(h.LastUpdated), change.Sub(h.LastUpdated).Round(time.Second), stamp(change), now.Sub(change).Round(time.Second)),
		ev, hint)
}

// rulesDisagree lists the IDs of this node's findings that show its rules
// out of step with the EndpointSlices.
func (na *nodeAnalysis) rulesDisagree() []string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range na.out.Findings {
		switch f.ID {
		case report.EndpointStale, report.EndpointMissing:
			if !seen[f.ID] {
				seen[f.ID] = true
				ids = append(ids, f.ID)
			}
		}
	}
	return ids
}

// healthAnswer quotes the healthz answer as evidence.
func healthAnswer(url string, h *nodestate.ProxyHealth) string {
	if h.StatusCode == 0 {
		return fmt.Sprintf("GET %s: no answer (%s)", url, orNone(h.Error))
	}
	s := fmt.Sprintf("GET %s: HTTP %d", url, h.StatusCode)
	if b := strings.TrimSpace(h.Body); b != "" {
		if len(b) > 300 {
			b = b[:300] + "..."
		}
		s += " " + b
	}
	return s
}

// lastSliceChange returns the newest change time of the service's
// EndpointSlices, and where it comes from: the
// endpoints.kubernetes.io/last-change-trigger-time annotation the
// EndpointSlice controller sets, else the slice's creation or its newest
// managedFields time. Zero when there is no slice.
func (na *nodeAnalysis) lastSliceChange() (time.Time, string) {
	var newest time.Time
	var from string
	for _, sl := range na.c.Slices(na.svc) {
		t, how := sliceChange(sl)
		if t.After(newest) {
			newest, from = t, fmt.Sprintf("EndpointSlice %s/%s, %s", sl.Namespace, sl.Name, how)
		}
	}
	return newest, from
}

func sliceChange(sl *discoveryv1.EndpointSlice) (time.Time, string) {
	if v, ok := sl.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, corev1.EndpointsLastChangeTriggerTime
		}
	}
	t, how := sl.CreationTimestamp.Time, "metadata.creationTimestamp"
	for _, mf := range sl.ManagedFields {
		if mf.Time != nil && mf.Time.After(t) {
			t, how = mf.Time.Time, "metadata.managedFields time of "+orNone(mf.Manager)
		}
	}
	return t, how
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ago says how long before now t was, and by which clock.
func ago(now, t time.Time, nowFrom string) string {
	if now.IsZero() {
		return ""
	}
	return fmt.Sprintf(" (%s before %s %s)", now.Sub(t).Round(time.Second), nowFrom, stamp(now))
}

// checkConntrackStats flags a conntrack table near its limit and failed
// insertions or drops counted by the kernel.
func (na *nodeAnalysis) checkConntrackStats() {
	s := na.st.ConntrackStats
	if s == nil {
		return
	}
	failed, drop, early := uint64(0), uint64(0), uint64(0)
	for _, c := range s.PerCPU {
		failed += uint64(c.InsertFailed)
		drop += uint64(c.Drop)
		early += uint64(c.EarlyDrop)
	}
	fill := fmt.Sprintf("%s: count %d, max %d", agentapi.FileConntrackStats, s.Count, s.Max)
	if s.Max > 0 {
		ratio := float64(s.Count) / float64(s.Max)
		fill += fmt.Sprintf(" (%.1f%% full)", 100*ratio)
		switch {
		case ratio >= conntrackFullRatio:
			ev := []string{fill}
			if drop+early > 0 {
				ev = append(ev, fmt.Sprintf("since boot, summed over %d CPU(s): drop=%d early_drop=%d: the table has already overflowed", len(s.PerCPU), drop, early))
			}
			na.finding(report.ConntrackTableFull, "", "",
				fmt.Sprintf("the conntrack table of %s holds %d of its %d entries (%.1f%%, alarm at %.0f%%): when it is full the kernel first evicts unconfirmed entries, then drops the first packet of each new connection (dmesg: nf_conntrack: table full, dropping packet), so new connections to every service, DNS included, fail or retry at random",
					na.st.Name, s.Count, s.Max, 100*ratio, 100*conntrackFullRatio),
				ev,
				"raise the limit (sysctl -w net.netfilter.nf_conntrack_max=N; kube-proxy raises it at start to conntrack.maxPerCore × CPUs, at least conntrack.min) and find what fills it: conntrack -L | awk '{print $1, $4}' | sort | uniq -c | sort -rn | head; long established timeouts (kube-proxy's conntrack.tcpEstablishedTimeout) and UDP floods are the usual causes")
		case ratio >= conntrackHighRatio:
			na.note("the conntrack table of %s is %.0f%% full (%d of %d entries): not yet at the %.0f%% of %s, but new connections are dropped once it fills",
				na.st.Name, 100*ratio, s.Count, s.Max, 100*conntrackFullRatio, report.ConntrackTableFull)
		}
	}
	if failed+drop+early == 0 {
		return
	}
	var parts []string
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d conntrack insertion(s) failed (insert_failed): two connections raced for the same conntrack tuple and the later one's packet was dropped. The usual causes are the SNAT port race (MASQUERADE picking the same source port for two new connections to one destination) and parallel UDP DNS queries from one socket (A and AAAA sent at once); clients see intermittent connection timeouts and 5s DNS delays", failed))
	}
	if drop+early > 0 {
		var full []string
		if drop > 0 {
			full = append(full, fmt.Sprintf("%d packet(s) were dropped (drop)", drop))
		}
		if early > 0 {
			full = append(full, fmt.Sprintf("%d entr(y/ies) evicted early (early_drop)", early))
		}
		parts = append(parts, fmt.Sprintf("%s because the table was full (see %s)", strings.Join(full, " and "), report.ConntrackTableFull))
	}
	ev := []string{fill}
	var cpus []string
	for _, c := range s.PerCPU {
		if c.InsertFailed+c.Drop+c.EarlyDrop == 0 {
			continue
		}
		cpus = append(cpus, fmt.Sprintf("cpu=%d found=%d invalid=%d insert=%d insert_failed=%d drop=%d early_drop=%d error=%d search_restart=%d",
			c.CPU, c.Found, c.Invalid, c.Insert, c.InsertFailed, c.Drop, c.EarlyDrop, c.Error, c.SearchRestart))
	}
	ev = append(ev, limit(cpus, 8)...)
	if failed > 0 {
		ev = append(ev, na.masqueradeRandomness()...)
	}
	na.finding(report.ConntrackInsertFailed, "", "",
		fmt.Sprintf("the kernel's conntrack counters on %s (since boot, summed over %d CPU(s)) show lost packets: %s. Known fixes: --random-fully on every MASQUERADE/SNAT rule (kube-proxy's and the CNI's), NodeLocal DNSCache, DNS over TCP", na.st.Name, len(s.PerCPU), strings.Join(parts, "; ")),
		ev,
		"for the SNAT race, make every MASQUERADE and SNAT rule use --random-fully (kube-proxy adds it to its own rule when the node's iptables supports it; a CNI's masquerade rules need it too); for DNS, deploy NodeLocal DNSCache or have clients use TCP (resolv.conf options use-vc) or single-request-reopen; for drops, raise net.netfilter.nf_conntrack_max. The counters only grow: compare two readings of conntrack -S")
}

// masqueradeRandomness quotes the nat MASQUERADE and SNAT rules without
// --random-fully (the SNAT port race's usual fix), or says every one has
// it.
func (na *nodeAnalysis) masqueradeRandomness() []string {
	var plain []string
	seen := false
	for _, fam := range []string{"IPv4", "IPv6"} {
		d, err, _ := na.st.Dump(fam)
		if d == nil || err != nil {
			continue
		}
		t := d.Table("nat")
		if t == nil {
			continue
		}
		for _, c := range t.Chains {
			rules, err := c.Rules()
			if err != nil {
				continue
			}
			for _, r := range rules {
				if random, ok := sourceNATRandomFully(r); ok {
					seen = true
					if !random {
						plain = append(plain, "nat rule without --random-fully: "+r.Raw)
					}
				}
			}
		}
	}
	if seen && len(plain) == 0 {
		return []string{"every nat MASQUERADE/SNAT rule has --random-fully: the failures more likely come from parallel UDP (DNS) queries"}
	}
	return limit(plain, 5)
}

// sourceNATRandomFully tells whether r is a MASQUERADE or SNAT rule, and
// whether it has --random-fully.
func sourceNATRandomFully(r *iptables.Rule) (randomFully, ok bool) {
	switch {
	case r.Target.Masquerade != nil:
		return r.Target.Masquerade.RandomFully, true
	case r.Target.SNAT != nil:
		return r.Target.SNAT.RandomFully, true
	}
	return false, false
}

// checkForwarding flags IP forwarding off for a family of the service:
// the node then routes nothing between its interfaces.
func (na *nodeAnalysis) checkForwarding() {
	sc := na.st.Sysctl
	if sc == nil {
		return
	}
	var off []string
	for _, fam := range na.families() {
		key := forwardingKey[fam]
		if v, ok := sc.Get(key); ok && v == "0" {
			off = append(off, key+" = 0")
		}
	}
	if len(off) == 0 {
		return
	}
	ev := make([]string, 0, len(off))
	for _, o := range off {
		ev = append(ev, "sysctl: "+o)
	}
	na.finding(report.IPForwardDisabled, "", "",
		fmt.Sprintf("%s on %s: the kernel routes no packet from one interface to another and silently drops what it would forward. Pods on this node cannot reach the service (their packets arrive on a veth or bridge and must be routed to the endpoint after DNAT), and endpoints on this node get nothing from other nodes or through its NodePorts; only connections the node itself opens (and host-network pods) still work",
			strings.Join(off, " and "), na.st.Name),
		ev,
		"sysctl -w net.ipv4.ip_forward=1 (IPv6: net.ipv6.conf.all.forwarding=1) and persist it in /etc/sysctl.d/; then find what turned it off (a sysctl.d file, a hardening baseline, a network service restart): container runtimes and most CNIs set it when they start")
}

// podBridge is a Linux bridge with pods' veths as ports.
type podBridge struct {
	name  netdev.Name
	ports []string
}

// podBridges returns the node's bridges that have pod veths as ports
// (cni0, cbr0, docker0), as far as `ip -d link` tells.
func podBridges(links *netdev.Set) []podBridge {
	var out []podBridge
	for _, l := range links.Links() {
		if l.Kind() != netdev.KindBridge {
			continue
		}
		var ports []string
		for _, p := range links.BridgePorts(l.Name) {
			if p.Kind() == netdev.KindPodVeth {
				ports = append(ports, string(p.Name))
			}
		}
		if len(ports) > 0 {
			out = append(out, podBridge{l.Name, ports})
		}
	}
	return out
}

// checkBridgeNF flags pods on a Linux bridge whose frames skip iptables:
// bridge-nf-call-iptables (ip6tables for IPv6) is 0, or absent because
// br_netfilter is not loaded.
func (na *nodeAnalysis) checkBridgeNF() {
	sc := na.st.Sysctl
	if sc == nil || !kubeProxyMode(na.out.Mode) {
		return
	}
	bridges := podBridges(na.st.Links)
	if len(bridges) == 0 {
		return
	}
	var off, ev []string
	unloaded := false
	for _, fam := range na.families() {
		key := bridgeNFKey[fam]
		v, ok := sc.Get(key)
		switch {
		case ok && v == "0":
			off = append(off, key+" = 0")
			ev = append(ev, "sysctl: "+key+" = 0")
		case !ok && sc.NetSubtrees() >= 2:
			unloaded = true
			off = append(off, key+" does not exist (the br_netfilter module is not loaded)")
			ev = append(ev, "sysctl: no "+key+" although the file covers net.*: br_netfilter is not loaded")
		}
	}
	if len(off) == 0 {
		return
	}
	var where []string
	for _, b := range bridges {
		where = append(where, string(b.name))
		ports := b.ports
		if len(ports) > 8 {
			ports = append(ports[:8:8], fmt.Sprintf("... %d more", len(b.ports)-8))
		}
		ev = append(ev, fmt.Sprintf("ip -d link: bridge %s has pod port(s) %s", b.name, strings.Join(ports, ", ")))
	}
	hint := "sysctl -w net.bridge.bridge-nf-call-iptables=1 (and net.bridge.bridge-nf-call-ip6tables=1 for IPv6), persisted in /etc/sysctl.d/, as the Kubernetes install prerequisites say"
	if unloaded {
		hint = "modprobe br_netfilter (persist it in /etc/modules-load.d/), then " + hint
	}
	na.finding(report.BridgeNFCallDisabled, "", "",
		fmt.Sprintf("%s on %s, whose pods sit behind bridge %s: frames the bridge switches from one pod to another skip iptables and conntrack. A pod's request to the service is still routed through the node and DNATed, but when it is balanced to an endpoint on the same bridge and not source-NATed, the endpoint's reply goes straight to the client pod at layer 2, is never un-DNATed, and arrives from the endpoint's address instead of the service's: the client drops it (connections reset or time out, conntrack shows them [UNREPLIED])",
			strings.Join(off, " and "), na.st.Name, strings.Join(where, ", ")),
		ev, hint)
}
