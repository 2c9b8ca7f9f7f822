package apiread

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
)

func TestReadGathersWhatTheAnalyzerNeeds(t *testing.T) {
	c, rec := newClient(t, fixture()...)
	res, err := Read(context.Background(), c, "default", "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := res.Objects
	check := func(what string, got, want []string) {
		t.Helper()
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", what, d)
		}
	}
	check("services", names(o.Services), []string{"default/test", "kube-system/kube-dns"})
	check("slices", names(o.EndpointSlices), []string{"default/test-abcde", "kube-system/kube-dns-xyz"})
	// The selector's pods and the DNS pods; not the client nor "other".
	check("pods", names(o.Pods), []string{"default/web-1", "default/web-2", "kube-system/coredns-1"})
	check("nodes", names(o.Nodes), []string{"cp-1", "worker-1", "worker-2", "worker-3"})
	check("configmaps", names(o.ConfigMaps), []string{"kube-system/kube-proxy"})
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
	if res.Service == nil || res.Service.Name != "test" || res.KubeProxy == nil || res.KubeProxy.Name != "kube-proxy" {
		t.Errorf("Service %v, KubeProxy %v", res.Service, res.KubeProxy)
	}

	// Every object carries its type and no managedFields; nodes lose
	// their image lists.
	var all []runtime.Object
	for _, x := range o.Services {
		all = append(all, x)
	}
	for _, x := range o.EndpointSlices {
		all = append(all, x)
	}
	for _, x := range o.Pods {
		all = append(all, x)
	}
	for _, x := range o.Nodes {
		all = append(all, x)
		if x.Status.Images != nil {
			t.Errorf("node %s keeps its images", x.Name)
		}
	}
	for _, x := range o.ConfigMaps {
		all = append(all, x)
	}
	all = append(all, res.KubeProxy)
	for _, x := range all {
		gvk := x.GetObjectKind().GroupVersionKind()
		m := x.(metav1.Object)
		want := map[string]string{"Service": "v1", "Pod": "v1", "Node": "v1", "ConfigMap": "v1",
			"EndpointSlice": "discovery.k8s.io/v1", "DaemonSet": "apps/v1"}[gvk.Kind]
		if want == "" || gvk.GroupVersion().String() != want {
			t.Errorf("%T %s: apiVersion %q kind %q", x, m.GetName(), gvk.GroupVersion(), gvk.Kind)
		}
		if m.GetManagedFields() != nil {
			t.Errorf("%s %s keeps managedFields", gvk.Kind, m.GetName())
		}
	}

	// Efficient: one list of the selector's pods per service, no pod
	// fetched one by one when the selector found them all.
	for _, want := range []string{
		"get services default/test", "list endpointslices default kubernetes.io/service-name=test",
		"list pods default app=web", "list nodes", "get configmaps kube-system/kube-proxy",
		"get daemonsets kube-system/kube-proxy", "get services kube-system/kube-dns",
		"list endpointslices kube-system kubernetes.io/service-name=kube-dns", "list pods kube-system k8s-app=kube-dns",
	} {
		if rec.count(want) != 1 {
			t.Errorf("%q made %d times, want 1; calls:\n%s", want, rec.count(want), rec)
		}
	}
	if n := rec.count("get pods"); n != 0 {
		t.Errorf("%d pods fetched one by one; calls:\n%s", n, rec)
	}
}

func TestReadFetchesMissingEndpointPods(t *testing.T) {
	objs := fixture()
	// web-2 lost the label (the selector no longer picks it) and the slice
	// names a pod that is gone.
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && p.Name == "web-2" {
			p.Labels = map[string]string{"app": "web-old"}
		}
	}
	sl := testSlice()
	sl.Endpoints = append(sl.Endpoints, endpoint("10.244.2.11", "web-3", "worker-2"))
	objs = append(without(objs, "endpointslice/test-abcde"), sl)

	t.Run("one by one", func(t *testing.T) {
		c, rec := newClient(t, objs...)
		res, err := Read(context.Background(), c, "default", "test", Options{SkipDNS: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"default/web-1", "default/web-2"}, names(res.Objects.Pods)); d != "" {
			t.Errorf("pods (-want +got):\n%s", d)
		}
		if rec.count("get pods default/web-2") != 1 || rec.count("get pods default/web-3") != 1 || rec.count("get pods") != 2 {
			t.Errorf("calls:\n%s", rec)
		}
		want := []string{"endpoint pod default/web-3 no longer exists: the EndpointSlice may be stale"}
		if d := cmp.Diff(want, res.Warnings); d != "" {
			t.Errorf("warnings (-want +got):\n%s", d)
		}
	})
	t.Run("over the cap: one list of the namespace", func(t *testing.T) {
		c, rec := newClient(t, objs...)
		res, err := Read(context.Background(), c, "default", "test", Options{SkipDNS: true, MaxPodGets: 1})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"default/web-1", "default/web-2"}, names(res.Objects.Pods)); d != "" {
			t.Errorf("pods (-want +got):\n%s", d)
		}
		if rec.count("get pods") != 0 || rec.count("list pods default") != 2 {
			t.Errorf("calls:\n%s", rec)
		}
		want := []string{"1 endpoint pod(s) of the EndpointSlices no longer exist (default/web-3): the slices may be stale"}
		if d := cmp.Diff(want, res.Warnings); d != "" {
			t.Errorf("warnings (-want +got):\n%s", d)
		}
	})
}

func TestReadWithoutSelector(t *testing.T) {
	objs := fixture()
	for _, o := range objs {
		if s, ok := o.(*corev1.Service); ok && s.Name == "test" {
			s.Spec.Selector = nil
		}
	}
	c, rec := newClient(t, objs...)
	res, err := Read(context.Background(), c, "default", "test", Options{SkipDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"default/web-1", "default/web-2"}, names(res.Objects.Pods)); d != "" {
		t.Errorf("pods (-want +got):\n%s", d)
	}
	if rec.count("list pods") != 0 || rec.count("get pods") != 2 {
		t.Errorf("calls:\n%s", rec)
	}
	if rec.count("get services kube-system") != 0 {
		t.Errorf("SkipDNS read DNS:\n%s", rec)
	}
}

func TestReadFrom(t *testing.T) {
	for _, tc := range []struct {
		from     string
		wantPods []string
		wantErr  string
		is       []error
	}{
		{from: "pod/client", wantPods: []string{"default/client", "default/web-1", "default/web-2"}},
		{from: "default/client", wantPods: []string{"default/client", "default/web-1", "default/web-2"}},
		{from: "pod/kube-system/coredns-1", wantPods: []string{"default/web-1", "default/web-2", "kube-system/coredns-1"}},
		{from: "10.244.3.20", wantPods: []string{"default/client", "default/web-1", "default/web-2"}},
		{from: "192.168.1.12", wantPods: []string{"default/web-1", "default/web-2"}},
		{from: "node/worker-3", wantPods: []string{"default/web-1", "default/web-2"}},
		{from: "pod/clinet", wantErr: `--from pod "clinet" not found in namespace "default"; did you mean client?`,
			is: []error{ErrSourceNotFound, analyze.ErrBadSource}},
		{from: "pod/defualt/client", wantErr: `--from pod "client" not found: namespace "defualt" does not exist; did you mean namespace default, pod default/client?`,
			is: []error{ErrSourceNotFound, ErrNamespaceNotFound}},
		{from: "node/worker-4", wantErr: `--from node "worker-4" not found; did you mean worker-1, worker-2, worker-3?`,
			is: []error{ErrSourceNotFound, analyze.ErrBadSource}},
		{from: "pod/", wantErr: "bad --from source", is: []error{analyze.ErrBadSource}},
	} {
		t.Run(tc.from, func(t *testing.T) {
			c, _ := newClient(t, fixture()...)
			res, err := Read(context.Background(), c, "default", "test", Options{From: tc.from, SkipDNS: true})
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				for _, target := range tc.is {
					mustIs(t, err, target)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.wantPods, names(res.Objects.Pods)); d != "" {
				t.Errorf("pods (-want +got):\n%s", d)
			}
		})
	}
}

func TestReadPaginates(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	var calls atomic.Int32
	all := []corev1.Node{*node("n-1", "192.168.9.1", "10.9.1.0/24", true), *node("n-2", "192.168.9.2", "10.9.2.0/24", true), *node("n-3", "192.168.9.3", "10.9.3.0/24", true)}
	c.PrependReactor("list", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch calls.Add(1) {
		case 1:
			return true, &corev1.NodeList{ListMeta: metav1.ListMeta{Continue: "page2"}, Items: all[:1]}, nil
		case 2:
			return true, &corev1.NodeList{ListMeta: metav1.ListMeta{Continue: "page3"}, Items: all[1:2]}, nil
		default:
			return true, &corev1.NodeList{Items: all[2:]}, nil
		}
	})
	res, err := Read(context.Background(), c, "default", "test", Options{SkipDNS: true, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d node list calls, want 3", calls.Load())
	}
	if d := cmp.Diff([]string{"n-1", "n-2", "n-3"}, names(res.Objects.Nodes)); d != "" {
		t.Errorf("nodes (-want +got):\n%s", d)
	}
}

func TestReadRelistsWhenContinueExpires(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	var calls atomic.Int32
	all := []corev1.Node{*node("n-1", "192.168.9.1", "10.9.1.0/24", true), *node("n-2", "192.168.9.2", "10.9.2.0/24", true)}
	c.PrependReactor("list", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch calls.Add(1) {
		case 1:
			return true, &corev1.NodeList{ListMeta: metav1.ListMeta{Continue: "page2"}, Items: all[:1]}, nil
		case 2:
			return true, nil, apierrors.NewResourceExpired("continue token expired")
		default:
			return true, &corev1.NodeList{Items: all}, nil
		}
	})
	res, err := Read(context.Background(), c, "default", "test", Options{SkipDNS: true, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d node list calls, want 3", calls.Load())
	}
	if d := cmp.Diff([]string{"n-1", "n-2"}, names(res.Objects.Nodes)); d != "" {
		t.Errorf("nodes (-want +got):\n%s", d)
	}
}

func TestReadOptionalObjectsAreWarnings(t *testing.T) {
	forbidden := func(gr schema.GroupResource, name string) error {
		return apierrors.NewForbidden(gr, name, fmt.Errorf("User \"alice\" cannot get resource"))
	}
	cm := schema.GroupResource{Resource: "configmaps"}
	ds := schema.GroupResource{Group: "apps", Resource: "daemonsets"}
	svcs := schema.GroupResource{Resource: "services"}
	for _, tc := range []struct {
		name  string
		setup func(objs []runtime.Object) []runtime.Object
		fail  func(c *fake.Clientset)
		want  []string
	}{
		{
			name: "absent",
			setup: func(o []runtime.Object) []runtime.Object {
				return without(o, "configmap/kube-proxy", "daemonset/kube-proxy")
			},
			want: []string{
				"no ConfigMap kube-system/kube-proxy: kube-proxy's mode and cluster CIDR are inferred from the node's rules",
				"no DaemonSet kube-system/kube-proxy: kube-proxy may run as static pods or under another name, or the cluster may use another service proxy (e.g. an eBPF kube-proxy replacement)",
			},
		},
		{
			name: "forbidden",
			fail: func(c *fake.Clientset) {
				c.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, forbidden(cm, "kube-proxy")
				})
				c.PrependReactor("get", "daemonsets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, forbidden(ds, "kube-proxy")
				})
				c.PrependReactor("get", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.GetNamespace() == "kube-system" {
						return true, nil, forbidden(svcs, "kube-dns")
					}
					return false, nil, nil
				})
			},
			want: []string{
				"cannot read ConfigMap kube-system/kube-proxy (forbidden): kube-proxy's mode and cluster CIDR are inferred from the node's rules",
				"cannot read DaemonSet kube-system/kube-proxy (forbidden)",
				"cannot read the cluster DNS Service kube-system/kube-dns (forbidden): the cluster DNS path is not checked",
			},
		},
		{
			name:  "no DNS service",
			setup: func(o []runtime.Object) []runtime.Object { return without(o, "service/kube-dns") },
			want:  []string{"no cluster DNS Service (kube-system/kube-dns or k8s-app=kube-dns): the cluster DNS path is not checked"},
		},
		{
			name: "kube-proxy configured by another ConfigMap",
			setup: func(o []runtime.Object) []runtime.Object {
				for _, x := range o {
					if d, ok := x.(*appsv1.DaemonSet); ok {
						d.Spec.Template.Spec.Volumes[0].ConfigMap.Name = "kube-proxy-config"
					}
				}
				return o
			},
			want: []string{"DaemonSet kube-system/kube-proxy mounts its configuration from ConfigMap kube-system/kube-proxy-config, which the analysis does not read: kube-proxy's mode and cluster CIDR are inferred from the node's rules"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := fixture()
			if tc.setup != nil {
				objs = tc.setup(objs)
			}
			c, _ := newClient(t, objs...)
			if tc.fail != nil {
				tc.fail(c)
			}
			res, err := Read(context.Background(), c, "default", "test", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, res.Warnings); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
		})
	}
}

func TestReadDNSByLabel(t *testing.T) {
	objs := fixture()
	for _, o := range objs {
		if s, ok := o.(*corev1.Service); ok && s.Name == "kube-dns" {
			s.Name = "coredns"
		}
	}
	c, _ := newClient(t, objs...)
	res, err := Read(context.Background(), c, "default", "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"default/test", "kube-system/coredns"}, names(res.Objects.Services)); d != "" {
		t.Errorf("services (-want +got):\n%s", d)
	}
	// Its slices are labelled with the old name in this fixture: none.
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
}

func TestReadTheDNSServiceItself(t *testing.T) {
	c, rec := newClient(t, fixture()...)
	res, err := Read(context.Background(), c, "kube-system", "kube-dns", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"kube-system/kube-dns"}, names(res.Objects.Services)); d != "" {
		t.Errorf("services (-want +got):\n%s", d)
	}
	if n := rec.count("get services kube-system/kube-dns"); n != 1 {
		t.Errorf("kube-dns read %d times:\n%s", n, rec)
	}
}

func TestReadHeadlessAndExternalNameAreNotErrors(t *testing.T) {
	headless := testService()
	headless.Name = "headless"
	headless.Spec.Type = corev1.ServiceTypeClusterIP
	headless.Spec.ClusterIP, headless.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	headless.Spec.Ports[0].NodePort = 0
	ext := &corev1.Service{ObjectMeta: meta("default", "ext", nil),
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}}
	c, _ := newClient(t, append(fixture(), headless, ext)...)
	for _, tc := range []struct{ name, reason string }{
		{"headless", "default/headless is a headless service (clusterIP: None): DNS returns the pod addresses and no node has rules for it, so no node is probed"},
		{"ext", `default/ext is an ExternalName service (a DNS CNAME to "db.example.com"): no node has rules for it, so no node is probed`},
	} {
		res, err := Read(context.Background(), c, "default", tc.name, Options{SkipDNS: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		probe, reason := NeedsProbe(res.Service)
		if probe || reason != tc.reason {
			t.Errorf("NeedsProbe(%s) = %v, %q; want false, %q", tc.name, probe, reason, tc.reason)
		}
	}
	if probe, reason := NeedsProbe(testService()); !probe || reason != "" {
		t.Errorf("NeedsProbe(test) = %v, %q", probe, reason)
	}
	other := testService()
	other.Labels = map[string]string{LabelServiceProxyName: "cilium"}
	if probe, reason := NeedsProbe(other); probe || !strings.Contains(reason, "kube-proxy ignores it") {
		t.Errorf("NeedsProbe(service-proxy-name) = %v, %q", probe, reason)
	}
}
