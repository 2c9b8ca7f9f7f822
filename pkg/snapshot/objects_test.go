package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// messyMultiDoc is a hand-made objects.yaml as a person assembles one:
// leading comments, a leading separator, empty documents, a separator with
// a comment, CRLF-free YAML with a Deployment and a CRD kind to skip, an
// object without namespace, the same object twice, and an end marker.
const messyMultiDoc = `# objects for the walkthrough cluster
# made by hand

---
apiVersion: v1
kind: Service
metadata:
  name: test
  namespace: default
spec:
  clusterIP: 10.99.64.233
  ports:
  - port: 9999
    protocol: TCP
    targetPort: 80
  selector:
    app: nginx
---
---   # an empty document, then one with only comments
# nothing here
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
spec:
  replicas: 2
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.1.0.0/16
  ipipMode: Always
  natOutgoing: true
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: test-abcde
  labels:
    kubernetes.io/service-name: test
addressType: IPv4
endpoints:
- addresses: ["10.1.139.84"]
  conditions: {ready: true}
ports:
- name: ""
  port: 80
  protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: test
  namespace: default
spec:
  clusterIP: 10.99.64.233
  ports:
  - port: 9999
    protocol: TCP
    targetPort: 80
  selector:
    app: nginx
...
---
apiVersion: v1
kind: Node
metadata:
  name: worker-1
status:
  addresses:
  - type: InternalIP
    address: 192.168.2.2
`

// kubectlList is the shape kubectl get svc,endpointslices,pods,nodes -A -o
// yaml prints: one v1 List whose items carry their own apiVersion and kind.
const kubectlList = `apiVersion: v1
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: kubernetes
    namespace: default
  spec:
    clusterIP: 10.96.0.1
    ports:
    - name: https
      port: 443
      protocol: TCP
      targetPort: 6443
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: kubernetes
    namespace: default
    labels:
      kubernetes.io/service-name: kubernetes
  addressType: IPv4
  endpoints:
  - addresses:
    - 192.168.2.1
  ports:
  - name: https
    port: 6443
    protocol: TCP
- apiVersion: v1
  kind: Pod
  metadata:
    name: client
    namespace: default
  spec:
    nodeName: worker-2
  status:
    podIP: 10.1.236.141
- apiVersion: v1
  kind: Node
  metadata:
    name: worker-2
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: kube-proxy
    namespace: kube-system
  data:
    config.conf: |
      mode: "iptables"
- apiVersion: apps/v1
  kind: DaemonSet
  metadata:
    name: kube-proxy
    namespace: kube-system
kind: List
metadata:
  resourceVersion: ""
`

const kubectlJSON = `{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.100", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}
`

// summary names what was decoded, in order, per kind.
func summary(o Objects) string {
	var parts []string
	for _, s := range o.Services {
		parts = append(parts, "svc:"+s.Namespace+"/"+s.Name)
	}
	for _, s := range o.EndpointSlices {
		parts = append(parts, "eps:"+s.Namespace+"/"+s.Name)
	}
	for _, p := range o.Pods {
		parts = append(parts, "pod:"+p.Namespace+"/"+p.Name)
	}
	for _, n := range o.Nodes {
		parts = append(parts, "node:"+n.Name)
	}
	for _, c := range o.ConfigMaps {
		parts = append(parts, "cm:"+c.Namespace+"/"+c.Name)
	}
	return strings.Join(parts, " ")
}

func TestDecodeObjects(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // summary of the decoded objects
		wantErr string // substring of the error; empty for success
	}{
		{name: "empty file", in: "", want: ""},
		{name: "only comments", in: "# nothing yet\n\n", want: ""},
		{name: "messy multi-document", in: messyMultiDoc,
			want: "svc:default/test eps:default/test-abcde node:worker-1"},
		{name: "kubectl List", in: kubectlList,
			want: "svc:default/kubernetes eps:default/kubernetes pod:default/client node:worker-2 cm:kube-system/kube-proxy"},
		{name: "kubectl List as JSON", in: kubectlJSON, want: "svc:default/web pod:default/web-1"},
		{name: "JSON stream of objects", in: `{"apiVersion":"v1","kind":"Node","metadata":{"name":"b"}}
{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}}`, want: "node:b node:a"},
		{name: "JSON array of objects", in: `[{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}}]`, want: "node:a"},
		{name: "CRLF line endings", in: strings.ReplaceAll(kubectlList, "\n", "\r\n"),
			want: "svc:default/kubernetes eps:default/kubernetes pod:default/client node:worker-2 cm:kube-system/kube-proxy"},
		{name: "byte order mark", in: "\xef\xbb\xbf" + kubectlJSON, want: "svc:default/web pod:default/web-1"},
		{name: "typed list as the API returns it", in: `apiVersion: v1
kind: ServiceList
items:
- metadata: {name: a, namespace: x}
- metadata: {name: b}
`, want: "svc:x/a svc:default/b"},
		{name: "List of Lists", in: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Node, metadata: {name: node-a}}
`, want: "node:node-a"},
		{name: "missing namespace means default", in: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n", want: "pod:default/p"},
		{name: "same object twice is kept once", in: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n",
			want: "node:node-a"},
		{name: "unknown kind without a registered group", in: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {anything: [1, 2]}\n", want: ""},
		{name: "kind of another group that a snapshot does not hold", in: "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\n", want: ""},

		{name: "same object twice with different content", in: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-a, labels: {a: b}}\n",
			wantErr: "objects.yaml: document 2 (line 5): Node node-a is also in objects.yaml: document 1 (line 1), with different content"},
		{name: "bad apiVersion for a known kind", in: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n---\n# the service\napiVersion: v2\nkind: Service\nmetadata: {name: s}\n",
			wantErr: `objects.yaml: document 2 (line 6): Service has apiVersion "v2", want "v1"`},
		{name: "old EndpointSlice version", in: "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\n",
			wantErr: `document 1 (line 1): EndpointSlice has apiVersion "discovery.k8s.io/v1beta1", want "discovery.k8s.io/v1"`},
		{name: "bad apiVersion inside a List", in: kubectlList + "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Node, metadata: {name: x}}\n- {apiVersion: core/v1, kind: Pod, metadata: {name: p}}\n",
			wantErr: `objects.yaml: document 2 (line 60), item 2: Pod has apiVersion "core/v1", want "v1"`},
		{name: "List item without kind", in: "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: node-a}\n",
			wantErr: "document 1 (line 1), item 1: object has no kind"},
		{name: "List with another apiVersion", in: "apiVersion: v2\nkind: List\nitems: []\n",
			wantErr: `List has apiVersion "v2"`},
		{name: "missing apiVersion", in: "kind: Service\nmetadata: {name: s}\n",
			wantErr: "document 1 (line 1): Service has no apiVersion"},
		{name: "missing name", in: "apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\n",
			wantErr: "document 1 (line 1): Service has no metadata.name"},
		{name: "invalid YAML", in: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: [unclosed\n",
			wantErr: "objects.yaml: document 2 (line 5): invalid YAML"},
		{name: "tab indentation", in: "apiVersion: v1\nkind: Node\nmetadata:\n\tname: n\n",
			wantErr: "document 1 (line 1): invalid YAML"},
		{name: "wrong field type", in: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: \"9999\"\n",
			wantErr: "document 1 (line 1): decode Service"},
		{name: "scalar document", in: "just a string\n", wantErr: "document 1 (line 1): not an object"},
		{name: "content after separator", in: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n--- kind: Node\n",
			wantErr: "objects.yaml: line 4: content after the document separator"},
		{name: "invalid JSON", in: "{\"apiVersion\": \"v1\",\n\"kind\": \"Node\",\n\"metadata\": {\"name\": }}\n",
			wantErr: "objects.yaml: document 1 (line 3): invalid JSON"},
		{name: "second JSON value invalid", in: `{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}}` + "\n{oops}\n",
			wantErr: "objects.yaml: document 2 (line 2): invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeObjects("objects.yaml", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want one containing %q; decoded %s", tc.wantErr, summary(got))
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidObjects) {
					t.Errorf("error %q is not ErrInvalidObjects", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if s := summary(got); s != tc.want {
				t.Errorf("decoded %q, want %q", s, tc.want)
			}
		})
	}
}

// The decoded objects are typed, complete, and carry their apiVersion and
// kind even when the file did not (items of a typed list).
func TestDecodeObjectsContent(t *testing.T) {
	objs, err := decodeObjects("objects.yaml", []byte(messyMultiDoc))
	if err != nil {
		t.Fatal(err)
	}
	svc := objs.Services[0]
	if svc.Spec.ClusterIP != "10.99.64.233" || svc.Spec.Ports[0].Port != 9999 || svc.Spec.Ports[0].TargetPort.IntValue() != 80 ||
		svc.Spec.Selector["app"] != "nginx" {
		t.Errorf("service decoded wrong: %+v", svc.Spec)
	}
	eps := objs.EndpointSlices[0]
	if eps.Namespace != "default" || eps.Labels["kubernetes.io/service-name"] != "test" ||
		eps.Endpoints[0].Conditions.Ready == nil || !*eps.Endpoints[0].Conditions.Ready || *eps.Ports[0].Port != 80 {
		t.Errorf("endpointslice decoded wrong: %+v", eps)
	}
	if objs.Nodes[0].Status.Addresses[0].Address != "192.168.2.2" {
		t.Errorf("node decoded wrong: %+v", objs.Nodes[0].Status)
	}

	typed, err := decodeObjects("objects.yaml", []byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSliceList\nitems:\n- metadata: {name: e}\n  addressType: IPv4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := typed.EndpointSlices[0].APIVersion + " " + typed.EndpointSlices[0].Kind; got != "discovery.k8s.io/v1 EndpointSlice" {
		t.Errorf("typed list item has apiVersion/kind %q", got)
	}
}

// A document index and line that point at the right place in a real file.
func TestLoadNamesFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	bad := kubectlList + "---\n\n# services added by hand\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports: 1\n"
	if err := os.WriteFile(filepath.Join(dir, FileObjects), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	want := filepath.Join(dir, FileObjects) + ": document 2 (line 62): decode Service"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
}
