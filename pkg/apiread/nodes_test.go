package apiread

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// objectsOf sorts runtime objects into snapshot.Objects (Namespaces and
// DaemonSets are dropped).
func objectsOf(objs []runtime.Object) *snapshot.Objects {
	o := &snapshot.Objects{}
	for _, x := range objs {
		switch v := x.(type) {
		case *corev1.Service:
			o.Services = append(o.Services, v)
		case *discoveryv1.EndpointSlice:
			o.EndpointSlices = append(o.EndpointSlices, v)
		case *corev1.Pod:
			o.Pods = append(o.Pods, v)
		case *corev1.Node:
			o.Nodes = append(o.Nodes, v)
		case *corev1.ConfigMap:
			o.ConfigMaps = append(o.ConfigMaps, v)
		}
	}
	return o
}

func setReady(o *snapshot.Objects, name string, ready bool) {
	for _, n := range o.Nodes {
		if n.Name == name {
			n.Status.Conditions[0].Status = corev1.ConditionTrue
			if !ready {
				n.Status.Conditions[0].Status = corev1.ConditionUnknown
				n.Status.Conditions[0].Reason = "NodeStatusUnknown"
				n.Status.Conditions[0].Message = "Kubelet stopped posting node status."
			}
		}
	}
}

func TestChooseNodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(o *snapshot.Objects, svc *corev1.Service)
		explicit []string
		from     string
		all      bool
		want     []string
		skipped  []string
		wantErr  string
		is       error
	}{
		{name: "endpoint nodes", want: []string{"worker-1", "worker-2"}},
		{name: "endpoint nodes and the --from pod's", from: "pod/client", want: []string{"worker-1", "worker-2", "worker-3"}},
		{name: "--from pod on an endpoint node", from: "pod/web-1", want: []string{"worker-1", "worker-2"}},
		{name: "--from node", from: "node/cp-1", want: []string{"cp-1", "worker-1", "worker-2"}},
		{name: "--from a pod IP", from: "10.244.3.20", want: []string{"worker-1", "worker-2", "worker-3"}},
		{name: "--from a node IP", from: "192.168.1.12", want: []string{"worker-1", "worker-2", "worker-3"}},
		{name: "--from an off-cluster IP", from: "203.0.113.7", want: []string{"worker-1", "worker-2"}},
		{name: "--from a missing pod", from: "pod/clint", wantErr: `--from pod "clint" not found in namespace "default"; did you mean client?`, is: ErrSourceNotFound},
		{name: "--from a missing node", from: "node/wroker-1", wantErr: `--from node "wroker-1" not found; did you mean worker-1, worker-2, worker-3?`, is: analyze.ErrBadSource},
		{name: "--from a NotReady node", from: "pod/client",
			edit:    func(o *snapshot.Objects, _ *corev1.Service) { setReady(o, "worker-3", false) },
			wantErr: `node "worker-3" is not Ready (Ready=Unknown NodeStatusUnknown: Kubelet stopped posting node status.): the agent cannot run there, so it cannot be probed; trace from a client on a Ready node (Ready nodes: cp-1, worker-1, worker-2)`,
			is:      ErrNodeNotReady},
		{name: "explicit", explicit: []string{"worker-3", "worker-1", "worker-3"}, want: []string{"worker-1", "worker-3"}},
		{name: "explicit with --from elsewhere", explicit: []string{"worker-1"}, from: "pod/client", want: []string{"worker-1", "worker-3"}},
		{name: "explicit unknown", explicit: []string{"worker-9"}, is: ErrNodeNotFound,
			wantErr: `node "worker-9" not found; did you mean worker-1, worker-2, worker-3?`},
		{name: "explicit unknown, nothing close", explicit: []string{"zz"}, is: ErrNodeNotFound,
			wantErr: `node "zz" not found (nodes: cp-1, worker-1, worker-2, worker-3)`},
		{name: "explicit NotReady", explicit: []string{"worker-2"}, is: ErrNodeNotReady,
			edit:    func(o *snapshot.Objects, _ *corev1.Service) { setReady(o, "worker-2", false) },
			wantErr: `node "worker-2" is not Ready (Ready=Unknown NodeStatusUnknown: Kubelet stopped posting node status.): the agent cannot run there, so it cannot be probed; pass --node with another node (Ready nodes: cp-1, worker-1, worker-3)`},
		{name: "all nodes", all: true, want: []string{"cp-1", "worker-1", "worker-3"},
			edit: func(o *snapshot.Objects, _ *corev1.Service) { setReady(o, "worker-2", false) }},
		{name: "--node and --all-nodes", all: true, explicit: []string{"worker-1"}, wantErr: "--node and --all-nodes cannot be used together"},
		{name: "NotReady endpoint node is skipped", want: []string{"worker-1"}, skipped: []string{"worker-2"},
			edit: func(o *snapshot.Objects, _ *corev1.Service) { setReady(o, "worker-2", false) }},
		{name: "endpoint without nodeName: the pod's node", want: []string{"worker-1", "worker-2"},
			edit: func(o *snapshot.Objects, _ *corev1.Service) {
				for _, sl := range o.EndpointSlices {
					for i := range sl.Endpoints {
						sl.Endpoints[i].NodeName = nil
					}
				}
			}},
		{name: "endpoint without nodeName nor targetRef: the pod of its IP", want: []string{"worker-1", "worker-2"},
			edit: func(o *snapshot.Objects, _ *corev1.Service) {
				for _, sl := range o.EndpointSlices {
					for i := range sl.Endpoints {
						sl.Endpoints[i].NodeName, sl.Endpoints[i].TargetRef = nil, nil
					}
				}
			}},
		{name: "no endpoints: a worker", want: []string{"worker-1"}, edit: noEndpoints},
		{name: "no endpoints, the workers tainted: an untainted control plane", want: []string{"cp-1"},
			edit: func(o *snapshot.Objects, svc *corev1.Service) {
				noEndpoints(o, svc)
				for _, n := range o.Nodes {
					if strings.HasPrefix(n.Name, "worker") {
						n.Spec.Unschedulable = true
					}
					if n.Name == "cp-1" {
						n.Spec.Taints = nil
					}
				}
			}},
		{name: "no endpoints, only tainted nodes: any Ready one", want: []string{"worker-2"},
			edit: func(o *snapshot.Objects, svc *corev1.Service) {
				noEndpoints(o, svc)
				setReady(o, "worker-1", false)
				for _, n := range o.Nodes {
					n.Spec.Unschedulable = true
				}
			}},
		{name: "no Ready node", is: ErrNoReadyNode,
			wantErr: "no Ready node: none of the cluster's 4 node(s) is Ready (cp-1, worker-1, worker-2, worker-3), so none can be probed",
			edit: func(o *snapshot.Objects, svc *corev1.Service) {
				for _, n := range o.Nodes {
					setReady(o, n.Name, false)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := objectsOf(fixture())
			svc := objs.Services[0]
			if svc.Name != "test" {
				t.Fatal("fixture changed")
			}
			if tc.edit != nil {
				tc.edit(objs, svc)
			}
			got, err := ChooseNodes(objs, svc, tc.explicit, tc.from, tc.all)
			if tc.wantErr != "" || tc.is != nil {
				if err == nil || (tc.wantErr != "" && err.Error() != tc.wantErr) {
					t.Fatalf("error\n  %v\nwant\n  %s", err, tc.wantErr)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v is not %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("nodes (-want +got):\n%s", d)
			}
			ch, err := Choose(objs, svc, NodeOptions{Explicit: tc.explicit, From: tc.from, AllNodes: tc.all})
			if err != nil {
				t.Fatal(err)
			}
			var skipped []string
			for _, s := range ch.Skipped {
				skipped = append(skipped, s.Name)
			}
			if d := cmp.Diff(tc.skipped, skipped); d != "" {
				t.Errorf("skipped (-want +got):\n%s", d)
			}
			for _, n := range ch.Nodes {
				if ch.Why[n] == "" {
					t.Errorf("node %s chosen without a reason", n)
				}
			}
		})
	}
}

func noEndpoints(o *snapshot.Objects, svc *corev1.Service) {
	for _, sl := range o.EndpointSlices {
		if sl.Labels[discoveryv1.LabelServiceName] == svc.Name {
			sl.Endpoints = nil
		}
	}
}

func TestChooseReasons(t *testing.T) {
	objs := objectsOf(fixture())
	setReady(objs, "worker-2", false)
	ch, err := Choose(objs, objs.Services[0], NodeOptions{From: "pod/client"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"worker-1": "endpoints default/web-1", "worker-3": "--from pod default/client"}
	if d := cmp.Diff(want, ch.Why); d != "" {
		t.Errorf("Why (-want +got):\n%s", d)
	}
	wantSkipped := []SkippedNode{{"worker-2", "endpoints default/web-2 are on node worker-2, which is not Ready (Ready=Unknown NodeStatusUnknown: Kubelet stopped posting node status.): it cannot be probed"}}
	if d := cmp.Diff(wantSkipped, ch.Skipped); d != "" {
		t.Errorf("Skipped (-want +got):\n%s", d)
	}
}
