//go:build linux

package ctcollect

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// Stats reads the table's fill (conntrack -C and nf_conntrack_max) and the
// kernel's per-CPU counters (conntrack -S) of the namespace opts.NetNS
// names, over ctnetlink (IPCTNL_MSG_CT_GET_STATS and _GET_STATS_CPU).
// Kernels older than 4.18 send no maximum; for the caller's own namespace
// (NetNS 0) the count and maximum then come from
// /proc/sys/net/netfilter, which shows the namespace of the reader, so it
// is not read for another one. Flows, Truncated and KernelFiltered are
// left zero.
func Stats(opts Options) (agentapi.ConntrackStats, error) {
	var st agentapi.ConntrackStats
	c, err := conntrack.Dial(&netlink.Config{NetNS: opts.NetNS})
	if err != nil {
		return st, fmt.Errorf("dial ctnetlink: %w", err)
	}
	defer c.Close()

	var errs []error
	g, gerr := c.StatsGlobal()
	if gerr == nil {
		st.Count, st.Max = int64(g.Entries), int64(g.MaxEntries)
	}
	if (gerr != nil || g.MaxEntries == 0) && opts.NetNS == 0 {
		count, cerr := readProcInt("/proc/sys/net/netfilter/nf_conntrack_count")
		max, merr := readProcInt("/proc/sys/net/netfilter/nf_conntrack_max")
		if cerr == nil && merr == nil {
			st.Count, st.Max, gerr = count, max, nil
		}
	}
	if gerr != nil {
		errs = append(errs, fmt.Errorf("table size: %w", gerr))
	}

	cpus, err := c.Stats()
	if err != nil {
		errs = append(errs, fmt.Errorf("per-CPU counters: %w", err))
	}
	for _, s := range cpus {
		st.PerCPU = append(st.PerCPU, agentapi.ConntrackCPUStats{
			CPU:           int(s.CPUID),
			Found:         s.Found,
			Invalid:       s.Invalid,
			Insert:        s.Insert,
			InsertFailed:  s.InsertFailed,
			Drop:          s.Drop,
			EarlyDrop:     s.EarlyDrop,
			Error:         s.Error,
			SearchRestart: s.SearchRestart,
		})
	}
	return st, errors.Join(errs...)
}

func readProcInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
