package cli

import (
	"strings"
	"testing"
)

func TestParseServiceRef(t *testing.T) {
	tests := []struct {
		name    string
		arg     string
		want    serviceRef
		wantErr string // substring; "" means no error
	}{
		{name: "name", arg: "web", want: serviceRef{Name: "web"}},
		{name: "namespace/name", arg: "shop/web", want: serviceRef{Namespace: "shop", Name: "web"}},
		{name: "svc/name", arg: "svc/web", want: serviceRef{Name: "web"}},
		{name: "service/name", arg: "service/web", want: serviceRef{Name: "web"}},
		{name: "services/name", arg: "services/web", want: serviceRef{Name: "web"}},
		{name: "resource is case-insensitive", arg: "SVC/web", want: serviceRef{Name: "web"}},
		{name: "name with dashes and digits", arg: "kube-system/kube-dns2", want: serviceRef{Namespace: "kube-system", Name: "kube-dns2"}},
		{name: "subcommand name through svc/", arg: "svc/version", want: serviceRef{Name: "version"}},
		{name: "empty", arg: "", wantErr: "use NAMESPACE/NAME"},
		{name: "empty name", arg: "shop/", wantErr: "use NAMESPACE/NAME"},
		{name: "empty namespace", arg: "/web", wantErr: "use NAMESPACE/NAME"},
		{name: "svc without name", arg: "svc/", wantErr: "use NAMESPACE/NAME"},
		{name: "three parts", arg: "svc/shop/web", wantErr: "use NAMESPACE/NAME"},
		{name: "pod is not a service", arg: "pod/web-0", wantErr: `"pod/web-0" is not a Service`},
		{name: "deployment is not a service", arg: "deploy/web", wantErr: "-n deploy web"},
		{name: "upper case name", arg: "Web", wantErr: `invalid service name "Web"`},
		{name: "colon typo", arg: "default:web", wantErr: `invalid service name "default:web"`},
		{name: "name starting with a digit", arg: "1web", wantErr: "invalid service name"},
		{name: "bad namespace", arg: "Shop_1/web", wantErr: `invalid namespace "Shop_1"`},
		{name: "space", arg: "shop/ web", wantErr: "invalid service name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServiceRef(tc.arg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseServiceRef(%q) error = %v, want one containing %q", tc.arg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServiceRef(%q): %v", tc.arg, err)
			}
			if got != tc.want {
				t.Errorf("parseServiceRef(%q) = %+v, want %+v", tc.arg, got, tc.want)
			}
		})
	}
}
