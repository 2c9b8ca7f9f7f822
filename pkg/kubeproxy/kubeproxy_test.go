package kubeproxy

import "testing"

// The wanted names are taken from real nodes: the walkthrough (an older
// kube-proxy, "ns/name:" for unnamed ports) and kube-proxy v1.34 samples.
func TestChainNamesMatchRealNodes(t *testing.T) {
	tests := []struct {
		name, spn, proto, endpoint, wantSVC, wantSEP string
	}{
		{"v1.34 named port", "default/web:http", "TCP", "10.244.1.10:8080", "KUBE-SVC-CDGGSHYLG3RE2FKL", "KUBE-SEP-GWQABTP5GBYXHJY5"},
		{"v1.34 kubernetes", "default/kubernetes:https", "TCP", "10.200.0.10:6443", "KUBE-SVC-NPX46M4PTMTKRN6Y", "KUBE-SEP-SU2GOIUJWUKNSVOB"},
		{"old unnamed port", "default/test:", "tcp", "10.1.139.84:80", "KUBE-SVC-IOIC7CRUMQYLZ32S", "KUBE-SEP-LOGU6L2JYVKGEHXE"},
		{"old unnamed port 2", "default/test:", "tcp", "10.1.139.93:80", "KUBE-SVC-IOIC7CRUMQYLZ32S", "KUBE-SEP-ZSSX2RT66T6MAGNI"},
		{"old nodeport", "default/nginx:", "tcp", "", "KUBE-SVC-4N57TFCL4MD7ZTDA", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ServiceChains(tc.spn, tc.proto).SVC; got != tc.wantSVC {
				t.Errorf("SVC chain = %s, want %s", got, tc.wantSVC)
			}
			if tc.wantSEP == "" {
				return
			}
			if got := EndpointChain(tc.spn, tc.proto, tc.endpoint); got != tc.wantSEP {
				t.Errorf("SEP chain = %s, want %s", got, tc.wantSEP)
			}
		})
	}
}

func TestServicePortNames(t *testing.T) {
	if got := ServicePortNames("ns", "svc", ""); len(got) != 2 || got[0] != "ns/svc" || got[1] != "ns/svc:" {
		t.Errorf("unnamed: %v", got)
	}
	if got := ServicePortNames("ns", "svc", "dns"); len(got) != 1 || got[0] != "ns/svc:dns" {
		t.Errorf("named: %v", got)
	}
}
