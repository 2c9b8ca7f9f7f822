package apiread

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
)

func TestServiceNotFound(t *testing.T) {
	for _, tc := range []struct {
		ns, name string
		want     string
		missing  bool
		sugg     []string
	}{
		{ns: "default", name: "tset", want: `service "tset" not found in namespace "default"; did you mean test?`, sugg: []string{"test"}},
		{ns: "default", name: "kubernets", want: `service "kubernets" not found in namespace "default"; did you mean kubernetes?`, sugg: []string{"kubernetes"}},
		// The same name in another namespace.
		{ns: "default", name: "web", want: `service "web" not found in namespace "default"; did you mean shop/web?`, sugg: []string{"shop/web"}},
		{ns: "default", name: "zzz", want: `service "zzz" not found in namespace "default"`},
		// An empty namespace that exists.
		{ns: "shop", name: "test", want: `service "test" not found in namespace "shop"; did you mean default/test?`, sugg: []string{"default/test"}},
		// A namespace that does not exist.
		{ns: "shpo", name: "web", missing: true, sugg: []string{"shop/web"},
			want: `service "web" not found: namespace "shpo" does not exist; did you mean namespace shop, service shop/web?`},
		{ns: "nope", name: "zzz", missing: true, want: `service "zzz" not found: namespace "nope" does not exist`},
	} {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			objs := fixture()
			if tc.ns == "shop" {
				objs = without(objs, "service/web")
			}
			c, _ := newClient(t, objs...)
			_, err := Read(context.Background(), c, tc.ns, tc.name, Options{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, tc.want)
			}
			mustIs(t, err, ErrServiceNotFound)
			mustIs(t, err, analyze.ErrServiceNotFound)
			if errors.Is(err, ErrNamespaceNotFound) != tc.missing {
				t.Errorf("errors.Is(ErrNamespaceNotFound) = %v", !tc.missing)
			}
			if errors.Is(err, ErrSourceNotFound) || errors.Is(err, ErrNodeNotFound) {
				t.Errorf("matches a source or node sentinel")
			}
			var nf *NotFoundError
			if !errors.As(err, &nf) || nf.Kind != "service" || nf.Namespace != tc.ns || nf.Name != tc.name {
				t.Fatalf("errors.As: %#v", nf)
			}
			if d := cmp.Diff(tc.sugg, nf.Suggestions); d != "" {
				t.Errorf("suggestions (-want +got):\n%s", d)
			}
		})
	}
}

func TestServiceNotFoundWhenHintsAreForbidden(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	failWith(c, "list", "services", apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("no")))
	failWith(c, "get", "namespaces", apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "x", errors.New("no")))
	_, err := Read(context.Background(), c, "default", "tset", Options{})
	want := `service "tset" not found in namespace "default"`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	mustIs(t, err, ErrServiceNotFound)
}

func TestForbidden(t *testing.T) {
	for _, tc := range []struct {
		verb, resource string
		gr             schema.GroupResource
		want           string
		wantResource   string
		wantNS         string
	}{
		{verb: "get", resource: "services", gr: schema.GroupResource{Resource: "services"},
			want:         "you (alice) cannot get services in namespace default (forbidden): ask for the permissions in docs/rbac.yaml",
			wantResource: "services", wantNS: "default"},
		{verb: "list", resource: "endpointslices", gr: schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"},
			want:         "you (alice) cannot list endpointslices.discovery.k8s.io in namespace default (forbidden): ask for the permissions in docs/rbac.yaml",
			wantResource: "endpointslices.discovery.k8s.io", wantNS: "default"},
		{verb: "list", resource: "nodes", gr: schema.GroupResource{Resource: "nodes"},
			want:         "you (alice) cannot list nodes across the cluster (forbidden): ask for the permissions in docs/rbac.yaml",
			wantResource: "nodes"},
		{verb: "list", resource: "pods", gr: schema.GroupResource{Resource: "pods"},
			want:         "you (alice) cannot list pods in namespace default (forbidden): ask for the permissions in docs/rbac.yaml",
			wantResource: "pods", wantNS: "default"},
	} {
		t.Run(tc.verb+" "+tc.resource, func(t *testing.T) {
			c, _ := newClient(t, fixture()...)
			failWith(c, tc.verb, tc.resource, apierrors.NewForbidden(tc.gr, "", fmt.Errorf(`User "alice" cannot %s resource %q`, tc.verb, tc.resource)))
			_, err := Read(context.Background(), c, "default", "test", Options{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, tc.want)
			}
			mustIs(t, err, ErrForbidden)
			if !apierrors.IsForbidden(err) {
				t.Errorf("apierrors.IsForbidden is false")
			}
			var fe *ForbiddenError
			if !errors.As(err, &fe) || fe.Verb != tc.verb || fe.Resource != tc.wantResource || fe.Namespace != tc.wantNS {
				t.Errorf("errors.As: %#v", fe)
			}
		})
	}
	t.Run("get pods of endpoints", func(t *testing.T) {
		objs := fixture()
		c, _ := newClient(t, without(objs, "pod/web-2")...)
		failGet(c, "pods", "default", "web-2", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-2", errors.New("no")))
		_, err := Read(context.Background(), c, "default", "test", Options{})
		want := "you cannot get pods in namespace default (forbidden): ask for the permissions in docs/rbac.yaml"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %s", err, want)
		}
	})
}

func TestUnreachable(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api/v1/namespaces/default/services/test",
		Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 6443}, Err: syscall.ECONNREFUSED}}
	c, _ := newClient(t, fixture()...)
	failWith(c, "get", "services", refused)
	_, err := Read(context.Background(), c, "default", "test", Options{Server: "https://ignored:6443"})
	want := "cannot reach the Kubernetes API server at https://10.0.0.1:6443: dial tcp 10.0.0.1:6443: connection refused; " +
		"check that the cluster is up and that --context or --kubeconfig select it (kubectl config current-context shows the current context)"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	mustIs(t, err, ErrUnreachable)
	mustIs(t, err, syscall.ECONNREFUSED)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Server != "https://10.0.0.1:6443" {
		t.Errorf("errors.As: %#v", ue)
	}

	// A timeout without a URL names the server of Options.
	c, _ = newClient(t, fixture()...)
	failWith(c, "list", "endpointslices", context.DeadlineExceeded)
	_, err = Read(context.Background(), c, "default", "test", Options{Server: "https://api.example:6443"})
	want = "cannot reach the Kubernetes API server at https://api.example:6443: timed out (context deadline exceeded); " +
		"check that the cluster is up and that --context or --kubeconfig select it (kubectl config current-context shows the current context)"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	mustIs(t, err, ErrUnreachable)
	mustIs(t, err, context.DeadlineExceeded)
}

func TestUnauthorized(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	failWith(c, "get", "services", apierrors.NewUnauthorized("Unauthorized"))
	_, err := Read(context.Background(), c, "default", "test", Options{Server: "https://api.example:6443"})
	want := "the Kubernetes API server at https://api.example:6443 rejected your credentials (401 Unauthorized): they may have expired; log in again, or choose other credentials with --context or --kubeconfig"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	mustIs(t, err, ErrUnauthorized)
	if !apierrors.IsUnauthorized(err) {
		t.Error("apierrors.IsUnauthorized is false")
	}
}

func TestEndpointSlicesNotServed(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	failWith(c, "list", "endpointslices", apierrors.NewNotFound(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, ""))
	_, err := Read(context.Background(), c, "default", "test", Options{})
	mustIs(t, err, ErrAPINotServed)
}

func TestCanceled(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	failWith(c, "list", "nodes", &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api/v1/nodes", Err: context.Canceled})
	_, err := Read(context.Background(), c, "default", "test", Options{})
	mustIs(t, err, context.Canceled)
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("a cancellation is not an unreachable server: %v", err)
	}
}

func TestCloseNames(t *testing.T) {
	cands := []string{"test", "testing", "web", "kubernetes", "Test2", "api-gateway", "frontend"}
	for _, tc := range []struct {
		want string
		out  []string
	}{
		{"tset", []string{"test", "Test2"}},
		{"test", []string{"Test2", "testing"}},
		{"gateway", []string{"api-gateway"}},
		{"wbe", []string{"web"}},
		{"frnotend", []string{"frontend"}},
		{"x", nil},
	} {
		got := closeNames(tc.want, cands)
		if d := cmp.Diff(tc.out, got, cmpEmpty); d != "" {
			t.Errorf("closeNames(%q) (-want +got):\n%s", tc.want, d)
		}
	}
	var many []string
	for i := range 9 {
		many = append(many, fmt.Sprintf("web-%d", i))
	}
	if got := closeNames("web-x", many); len(got) != MaxSuggestions {
		t.Errorf("closeNames gave %d names, want %d", len(got), MaxSuggestions)
	}
}

var cmpEmpty = cmp.Comparer(func(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return cmp.Equal(a, b)
})

func TestOtherAPIErrorsNameTheRequest(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	failWith(c, "list", "nodes", apierrors.NewInternalError(errors.New("etcd is sad")))
	_, err := Read(context.Background(), c, "default", "test", Options{})
	want := "list nodes across the cluster: Internal error occurred: etcd is sad"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if !apierrors.IsInternalError(err) {
		t.Errorf("apierrors.IsInternalError is false")
	}
	for _, s := range []error{ErrForbidden, ErrUnreachable, ErrUnauthorized, ErrServiceNotFound} {
		if errors.Is(err, s) {
			t.Errorf("matches %v", s)
		}
	}
}

func TestFromIPLookupIsBestEffort(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
		}
		return false, nil, nil
	})
	res, err := Read(context.Background(), c, "default", "test", Options{From: "10.244.3.20", SkipDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cannot look up which pod has 10.244.3.20 (you cannot list pods across the cluster (forbidden): ask for the permissions in docs/rbac.yaml): it is taken for an off-cluster client unless it is a node address"}
	if d := cmp.Diff(want, res.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}
