package audit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
)

// clientFor serves a generated cluster's objects through the fake
// clientset.
func clientFor(g *genCluster) *fake.Clientset {
	var objs []runtime.Object
	for _, o := range g.objs.Services {
		objs = append(objs, o.DeepCopy())
	}
	for _, o := range g.objs.EndpointSlices {
		objs = append(objs, o.DeepCopy())
	}
	for _, o := range g.objs.Pods {
		p := o.DeepCopy()
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "busybox", Env: []corev1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 1000)}}}}
		objs = append(objs, p)
	}
	for _, o := range g.objs.Nodes {
		objs = append(objs, o.DeepCopy())
	}
	for _, o := range g.objs.ConfigMaps {
		objs = append(objs, o.DeepCopy())
	}
	return fake.NewClientset(objs...)
}

func TestReadCluster(t *testing.T) {
	g := newGenCluster(t, 4, 9)
	cs := clientFor(g)
	for _, tc := range []struct {
		name     string
		sel      Selection
		services []string
		skipped  int
	}{
		{"all", Selection{}, nil, 2},
		{"namespace", Selection{Namespace: "ns-1"}, []string{"ns-1/svc-001", "ns-1/svc-004", "ns-1/svc-007"}, 1},
		{"selector", Selection{Selector: "tier=db"}, []string{"ns-0/svc-003", "ns-1/svc-001", "ns-1/svc-007", "ns-2/svc-005"}, 0},
		{"names", Selection{Names: []Name{{"ns-2", "svc-002"}, {"ns-0", "headless"}, {"ns-2", "svc-002"}}}, []string{"ns-2/svc-002"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := ReadCluster(context.Background(), cs, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range cl.Services {
				names = append(names, s.Namespace+"/"+s.Name)
			}
			if tc.services == nil && len(names) != 9 || tc.services != nil && strings.Join(names, " ") != strings.Join(tc.services, " ") {
				t.Errorf("services %v, want %v", names, tc.services)
			}
			if len(cl.Skipped) != tc.skipped {
				t.Errorf("skipped %+v", cl.Skipped)
			}
			for _, sl := range cl.Objects.EndpointSlices {
				if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+sl.Namespace+"/"+sl.Labels["kubernetes.io/service-name"]+" ") {
					t.Errorf("slice %s/%s of a service not audited", sl.Namespace, sl.Name)
				}
			}
			if len(cl.Objects.Nodes) != 4 || len(cl.Objects.ConfigMaps) != 1 {
				t.Errorf("%d nodes, %d configmaps", len(cl.Objects.Nodes), len(cl.Objects.ConfigMaps))
			}
			for _, p := range cl.Objects.Pods {
				if len(p.Spec.Containers) != 0 || p.Status.PodIP == "" || p.Spec.NodeName == "" || p.Kind != "Pod" {
					t.Fatalf("pod not slimmed: %+v", p)
				}
			}
		})
	}
	if _, err := ReadCluster(context.Background(), cs, Selection{Names: []Name{{"ns-0", "nope"}}}); err == nil || !strings.Contains(err.Error(), "ns-0/nope not found") {
		t.Errorf("err = %v", err)
	}
	if _, err := ReadCluster(context.Background(), cs, Selection{Selector: "a in (b"}); err == nil {
		t.Error("a bad selector was accepted")
	}
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
	})
	if _, err := ReadCluster(context.Background(), cs, Selection{}); err == nil || !strings.Contains(err.Error(), "cannot list pods in all namespaces: forbidden") {
		t.Errorf("err = %v", err)
	}
}

func TestChooseNodes(t *testing.T) {
	g := newGenCluster(t, 6, 1)
	g.objs.Nodes[1].Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}
	g.objs.Nodes[2].Status.Conditions = nil
	nodes, unreported, err := ChooseNodes(g.objs.Nodes, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(nodes, ",") != "node-00,node-03,node-04,node-05" || len(unreported) != 2 ||
		unreported[0].Reason != "not probed: the node is not Ready (Ready=Unknown NodeStatusUnknown: Kubelet stopped posting node status)" {
		t.Errorf("%v %+v", nodes, unreported)
	}
	nodes, unreported, err = ChooseNodes(g.objs.Nodes, "pool=b")
	if err != nil || strings.Join(nodes, ",") != "node-03,node-05" || len(unreported) != 1 {
		t.Errorf("%v %+v %v", nodes, unreported, err)
	}
	if _, _, err := ChooseNodes(g.objs.Nodes, "pool in ("); err == nil {
		t.Error("bad selector accepted")
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&probe.ImagePullError{Node: "n", Image: "img", Reason: "ErrImagePull"}, "image pull failed: node n cannot pull"},
		{&probe.PodSecurityError{Namespace: "default", Err: errors.New("violates PodSecurity")}, "rejected by Pod Security admission: namespace default"},
		{&probe.TimeoutError{Node: "n", Pod: "p", Timeout: time.Minute, Phase: "Pending", Events: []string{"Warning X: y"}}, "timed out: probe pod /p stayed Pending on node n for 1m0s"},
		{&probe.NodeError{Node: "n", Reason: "NotFound"}, "node gone: node \"n\" not found"},
		{&probe.NodeError{Node: "n", Reason: "Deleted"}, "probe pod deleted (node gone?)"},
		{&probe.NotStartedError{Node: "n", Cause: &probe.PodSecurityError{}}, "not probed: node n was not probed"},
		{&probe.AgentError{Node: "n", ExitCode: 2}, "agent failed: the agent on node n exited with code 2"},
		{context.Canceled, "interrupted: context canceled"},
	} {
		got := Reason(tc.err)
		if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("Reason(%T) = %q, want %q...", tc.err, got, tc.want)
		}
	}
}

func TestFromProbe(t *testing.T) {
	doc := &agentapi.Document{Node: "n1", Partial: false, CollectedAt: "2026-11-21T04:34:34Z",
		Files:  map[string]string{"iptables-save": "*nat\nCOMMIT\n", "future-file": "x"},
		Errors: []agentapi.CollectError{{What: "conntrack", Error: "no module"}}}
	nd := fromProbe(probe.NodeResult{Node: "n1", Doc: doc})
	if nd.Data == nil || string(nd.Data.IPTablesSave) != "*nat\nCOMMIT\n" || len(nd.Warnings) != 2 {
		t.Errorf("%+v", nd)
	}
	nd = fromProbe(probe.NodeResult{Node: "n2", Err: &probe.ImagePullError{Node: "n2", Reason: "ErrImagePull"}})
	if nd.Data != nil || !strings.HasPrefix(nd.Reason, "image pull failed") {
		t.Errorf("%+v", nd)
	}
	// The document came, only the pod's delete failed: the node reported.
	nd = fromProbe(probe.NodeResult{Node: "n1", Doc: doc, Err: &probe.DeleteError{Namespace: "kube-system", Pod: "p", Err: errors.New("timeout")}})
	if nd.Data == nil || !strings.Contains(strings.Join(nd.Warnings, "\n"), "left behind") {
		t.Errorf("%+v", nd)
	}
	if r := Request("n1"); !r.Full || r.Node != "n1" || len(r.Targets) != 0 {
		t.Errorf("request %+v", r)
	}
}
