package iptcollect

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	corev1 "k8s.io/api/core/v1"
)

func TestScratch(t *testing.T) {
	ns := os.Getenv("SCRATCH_NS")
	if ns == "" {
		t.Skip()
	}
	sc := iptgen.NewScaleCluster(10000, 3, 42)
	var i int
	for i = range sc.Services {
		if sc.Services[i].Spec.Type == corev1.ServiceTypeNodePort {
			break
		}
	}
	s, sl := sc.Services[i], sc.Slices[i]
	p := s.Spec.Ports[0]
	tg := []agentapi.Target{{IP: s.Spec.ClusterIP, Port: int(p.Port), Protocol: "TCP", Role: "clusterIP"}}
	for _, e := range sl.Endpoints {
		tg = append(tg, agentapi.Target{IP: e.Addresses[0], Port: int(*sl.Ports[0].Port), Protocol: "TCP", Role: "endpoint"})
	}
	var st ExecStats
	run := st.Runner("ip", "netns", "exec", ns)
	start := time.Now()
	b, r, err := DetectBackend(context.Background(), run)
	t.Logf("detect %v %q %q %v %+v", time.Since(start), b, r, err, st.Snapshot())
	start = time.Now()
	res, err := Collect(context.Background(), Options{Run: run, Targets: tg, NodePorts: []agentapi.PortProto{{Port: int(p.NodePort), Protocol: "TCP"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collect %v backend %s (%s) chains %d cmds %d missing %v warn %v stats %+v", time.Since(start), res.Backend, res.BackendReason, res.Chains, res.Commands, res.Missing, res.Warnings, st.Snapshot())
	t.Logf("\n%s", res.Save)
}
