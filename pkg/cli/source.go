package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	// Authentication plugins of kubeconfigs (exec, OIDC, ...), as kubectl
	// has them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/apiread"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// data returns what to analyse: the --snapshot directory when given, else
// what the live collector gathers from the cluster. This is the one place
// that chooses between the two.
func (o *SvcpathOptions) data(ctx context.Context) (*snapshot.Snapshot, error) {
	if o.SnapshotDir != "" {
		klog.V(2).InfoS("loading snapshot", "dir", o.SnapshotDir)
		return o.loadSnapshot(o.SnapshotDir)
	}
	return o.collectLive(ctx)
}

// clientset builds the client from the kubeconfig flags; it is a seam for
// tests (the fake clientset).
func (o *SvcpathOptions) clientset() (kubernetes.Interface, string, error) {
	if o.newClient != nil {
		return o.newClient()
	}
	if raw, err := o.configFlags.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		(o.configFlags.APIServer == nil || *o.configFlags.APIServer == "") && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, "", errors.New("no cluster to talk to: the kubeconfig has no cluster ($KUBECONFIG, ~/.kube/config, --kubeconfig); select one with --kubeconfig/--context, or read a snapshot with --snapshot DIR (see docs/snapshot.md)")
	}
	cfg, err := o.configFlags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("no usable kubeconfig: %w\n(point --kubeconfig or $KUBECONFIG at one, or read a snapshot with --snapshot DIR)", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", err
	}
	return cs, cfg.Host, nil
}

// collectLive reads the Service and what it depends on from the API
// server, starts one probe pod per chosen node, and turns the agents'
// documents into a snapshot, the same data --snapshot reads. With --save
// the snapshot is also written to disk.
func (o *SvcpathOptions) collectLive(ctx context.Context) (*snapshot.Snapshot, error) {
	cs, server, err := o.clientset()
	if err != nil {
		return nil, err
	}
	res, err := apiread.Read(ctx, cs, o.Namespace, o.Name, apiread.Options{From: o.From, Server: server})
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		o.warn("%s", w)
	}
	snap := &snapshot.Snapshot{Objects: res.Objects}
	if need, reason := apiread.NeedsProbe(res.Service); !need {
		klog.V(1).InfoS("no probe needed", "reason", reason)
		return snap, o.save(snap)
	}
	choice, err := apiread.Choose(&res.Objects, res.Service, apiread.NodeOptions{Explicit: o.Nodes, From: o.From, AllNodes: o.AllNodes})
	if err != nil {
		return nil, err
	}
	for _, s := range choice.Skipped {
		o.warn("node %s is not probed: %s", s.Name, s.Reason)
	}
	if len(choice.Nodes) == 0 {
		return nil, errors.New("no Ready node to probe: the cluster has no node the probe pod could run on")
	}
	for _, n := range choice.Nodes {
		klog.V(1).InfoS("probing node", "node", n, "why", choice.Why[n])
	}

	fromPodIP, fromNode := o.fromPod(&res.Objects)
	prog := newProgress(o.ErrOut, o.isTerminal(o.ErrOut))
	cfg := probe.Config{
		Namespace:  o.ProbeNamespace,
		Image:      o.Image,
		PullPolicy: corev1.PullPolicy(o.PullPolicy),
		Timeout:    o.Timeout,
		KeepProbe:  o.KeepProbe,
		Progress:   prog.Set,
		// The agent gives up a little before the plugin does, so that a
		// slow node still returns what it read.
		Command: append(append([]string{}, probe.DefaultCommand...), "-timeout", agentTimeout(o.Timeout).String()),
	}
	reqFor := func(node string) *agentapi.Request {
		req := apiread.BuildRequest(&res.Objects, res.Service, node, o.Full)
		if o.Verify {
			ip := ""
			if node == fromNode {
				ip = fromPodIP
			}
			req.Verify = apiread.VerifyTargets(&res.Objects, res.Service, node, ip)
		}
		return req
	}
	results := o.runProbes(ctx, cs, cfg, choice.Nodes, reqFor)
	prog.Stop()

	var failed []error
	for _, node := range choice.Nodes {
		r, ok := results[node]
		if !ok {
			continue
		}
		if r.Err != nil {
			if !strings.Contains(r.Err.Error(), node) {
				r.Err = fmt.Errorf("node %s: %w", node, r.Err)
			}
			failed = append(failed, r.Err)
			continue
		}
		n, unknown := snapshot.NodeFromDocument(node, r.Doc)
		if len(unknown) > 0 {
			o.warn("node %s: the agent wrote files this plugin does not read (%s): is the agent image newer than the plugin?", node, strings.Join(unknown, ", "))
		}
		for _, e := range r.Doc.Errors {
			o.warn("node %s: the agent could not read %s: %s", node, e.What, e.Error)
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case len(failed) > 0 && len(snap.Nodes) == 0:
		if len(failed) == 1 {
			return nil, failed[0]
		}
		return nil, errors.Join(failed...)
	case len(failed) > 0:
		for _, err := range failed {
			o.warn("%v (the report leaves this node out)", err)
		}
		o.Nodes = nil // analyse the nodes that answered
	}
	return snap, o.save(snap)
}

// runProbes is probe.RunAll; a seam for tests.
func (o *SvcpathOptions) runProbes(ctx context.Context, cs kubernetes.Interface, cfg probe.Config, nodes []string, reqFor func(string) *agentapi.Request) map[string]probe.Result {
	if o.probeRunner != nil {
		return o.probeRunner(ctx, cs, cfg, nodes, reqFor)
	}
	return probe.RunAll(ctx, cs, cfg, nodes, reqFor, o.Concurrency)
}

// fromPod returns the address and node of the --from pod, when it is one.
func (o *SvcpathOptions) fromPod(objs *snapshot.Objects) (ip, node string) {
	if o.From == "" {
		return "", ""
	}
	src, err := analyze.ParseSource(o.From, o.Namespace)
	if err != nil {
		return "", ""
	}
	for _, p := range objs.Pods {
		switch {
		case src.Kind == analyze.SourcePod && p.Namespace == src.Namespace && p.Name == src.Name,
			src.Kind == analyze.SourceIP && !p.Spec.HostNetwork && p.Status.PodIP == src.IP.String():
			return p.Status.PodIP, p.Spec.NodeName
		}
	}
	return "", ""
}

// save writes the snapshot when --save is set.
func (o *SvcpathOptions) save(snap *snapshot.Snapshot) error {
	if o.SaveDir == "" {
		return nil
	}
	if err := snapshot.Save(o.SaveDir, snap); err != nil {
		return fmt.Errorf("--save: %w", err)
	}
	fmt.Fprintf(o.ErrOut, "snapshot saved to %s (replay: kubectl svcpath %s/%s --snapshot %s)\n", o.SaveDir, o.Namespace, o.Name, o.SaveDir)
	return nil
}

func (o *SvcpathOptions) warn(format string, args ...any) {
	fmt.Fprintf(o.ErrOut, "warning: "+format+"\n", args...)
}

// checkSaveDir fails early when --save names a directory that Save would
// refuse, before any probe pod is started.
func checkSaveDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--save %s: %w", dir, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("--save %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("--save %s: not a directory", dir)
	}
	if _, err := f.Readdirnames(1); err != io.EOF {
		return fmt.Errorf("--save %s: the directory is not empty; name a new one (snapshots are never overwritten)", dir)
	}
	return nil
}

// currentContext names the kubeconfig context in use.
func (o *SvcpathOptions) currentContext() (string, error) {
	if o.configFlags.Context != nil && *o.configFlags.Context != "" {
		return *o.configFlags.Context, nil
	}
	raw, err := o.configFlags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return "", err
	}
	return raw.CurrentContext, nil
}

// agentTimeout is the agent's own collection deadline for a probe timeout:
// what is left after the pod has started, with a margin for reading the
// result back.
func agentTimeout(probeTimeout time.Duration) time.Duration {
	t := probeTimeout * 3 / 4
	if t < 5*time.Second {
		t = 5 * time.Second
	}
	return t.Round(time.Second)
}
