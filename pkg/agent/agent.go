// Package agent is the node side of kubectl-svcpath: it runs inside the
// short-lived probe pod (hostNetwork, hostPID) and collects, read-only, what
// the question about one service needs: iptables rules (pkg/agent/iptcollect),
// conntrack flows and statistics (pkg/agent/ctcollect), routes, policy rules,
// links and addresses, the pods' eth0 as seen from inside each pod network
// namespace, the nftables and IPVS state, the sysctls that break services and
// kube-proxy's health. It changes nothing on the node; with --verify it makes
// the connections it was asked to make, and nothing else.
//
// Collect returns one agentapi.Document: the node files of the snapshot
// layout by name, with the errors of the collectors that failed.
package agent

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agent/iptcollect"
	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// Env is where the agent reads from. The zero value is not usable; use
// DefaultEnv in the probe pod. Tests point it at namespaces they create.
type Env struct {
	// Run runs the agent's tools (ip, iptables-*, nft).
	Run iptcollect.Runner
	// HostRun, when set, runs the host's own iptables binaries (a chroot
	// into the read-only host mount); Run is used otherwise.
	HostRun iptcollect.Runner
	// Proc is the procfs root (/proc: with hostPID, the host's processes).
	Proc string
	// Hostname names the node in the document.
	Hostname string
	// Version is the agent's version.
	Version string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultEnv is the probe pod's environment: the agent's own tools, the
// host's procfs, and, when /host/sbin exists, the host's iptables through
// chroot /host.
func DefaultEnv(version string) Env {
	host, _ := os.Hostname()
	if n := os.Getenv(agentapi.EnvNodeName); n != "" {
		host = n
	}
	env := Env{Run: iptcollect.ExecRunner(), Proc: "/proc", Hostname: host, Version: version}
	if os.Getenv("SVCPATH_HOST_BINARIES") == "1" {
		env.HostRun = iptcollect.ExecRunner("chroot", "/host")
	}
	return env
}

// collector is one part of the collection. It adds files to the result
// and returns an error when it could not do its part.
type collector struct {
	name string
	run  func(ctx context.Context, c *collection) error
}

// collection is the document being built; collectors run concurrently.
type collection struct {
	req *agentapi.Request
	env Env

	mu      sync.Mutex
	files   map[string]string
	errs    []agentapi.CollectError
	timings map[string]int64
	// podNetns is filled by the pod-interfaces collector and read by
	// verify (which runs after it).
	podNetns []podNetns
}

func (c *collection) put(name, content string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[name] = content
}

func (c *collection) fail(what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, agentapi.CollectError{What: what, Error: err.Error()})
}

// Collect gathers what req asks for. It never fails as a whole: the
// collectors that fail are listed in the document's Errors.
func Collect(ctx context.Context, req *agentapi.Request, env Env) *agentapi.Document {
	now := env.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	c := &collection{req: req, env: env, files: map[string]string{}, timings: map[string]int64{}}
	doc := &agentapi.Document{
		APIVersion:   agentapi.APIVersion,
		Kind:         agentapi.KindDocument,
		Node:         env.Hostname,
		AgentVersion: env.Version,
		Partial:      !req.Full,
	}
	if req.Node != "" && env.Hostname != "" && req.Node != env.Hostname {
		c.fail("node", fmt.Errorf("asked to run on node %q, running on %q", req.Node, env.Hostname))
	}

	// First wave: independent reads. pod-interfaces is needed by verify.
	runAll(ctx, c, []collector{
		{"iptables", func(ctx context.Context, c *collection) error { return collectIPTables(ctx, c, doc) }},
		{"ip", collectIP},
		{"pod-interfaces", collectPodInterfaces},
		{"nftables", collectNFT},
		{"ipvs", collectIPVS},
		{"sysctl", collectSysctls},
		{"kube-proxy-healthz", collectHealth},
	})
	// Second wave: verify makes connections; conntrack then sees them.
	if len(req.Verify) > 0 {
		runAll(ctx, c, []collector{{"verify", collectVerify}})
	}
	runAll(ctx, c, []collector{{"conntrack", collectConntrack}})

	doc.Files = c.files
	sort.Slice(c.errs, func(i, j int) bool { return c.errs[i].What < c.errs[j].What })
	doc.Errors = c.errs
	doc.Timings = c.timings
	doc.PeakRSSKiB, doc.ChildrenPeakRSSKiB = peakRSS()
	end := now()
	doc.CollectedAt = end.UTC().Format(time.RFC3339Nano)
	doc.DurationMillis = end.Sub(start).Milliseconds()
	return doc
}

func runAll(ctx context.Context, c *collection, cs []collector) {
	var wg sync.WaitGroup
	for _, col := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := col.run(ctx, c)
			c.mu.Lock()
			c.timings[col.name] = time.Since(t0).Milliseconds()
			c.mu.Unlock()
			if err != nil {
				c.fail(col.name, err)
			}
		}()
	}
	wg.Wait()
}

// hasIPv6 tells whether the request has IPv6 targets.
func hasIPv6(req *agentapi.Request) bool {
	for _, t := range req.Targets {
		if strings.Contains(t.IP, ":") {
			return true
		}
	}
	return false
}

// peakRSS returns the agent's own peak RSS (VmHWM of /proc/self/status)
// and the largest peak RSS of the commands it waited for, in KiB.
func peakRSS() (self, children int64) {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &self)
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		children = ru.Maxrss
	}
	return self, children
}
