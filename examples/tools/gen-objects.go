//go:build ignore

// gen-objects writes examples/<name>/objects.yaml for the bundled example
// snapshots, through snapshot.Save, so the files have the shape kubectl get
// -o yaml prints (a v1 List, apiVersion and kind on every item, keys
// sorted). Run from the repository root:
//
//	go run examples/tools/gen-objects.go
//
// The values are those of datapath-walkthrough.md (walkthrough, cni-bridge)
// and of the kube-proxy v1.34 samples (kube-proxy-v1.34); examples/README.md
// lists which are the page's and which were filled in.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

func main() {
	for name, objs := range map[string]snapshot.Objects{
		"walkthrough":      walkthrough(),
		"kube-proxy-v1.34": v134(),
		"cni-bridge":       cniBridge(),
	} {
		tmp, err := os.MkdirTemp("", "svcpath-objects-")
		check(err)
		check(snapshot.Save(tmp, &snapshot.Snapshot{Objects: objs}))
		b, err := os.ReadFile(filepath.Join(tmp, snapshot.FileObjects))
		check(err)
		check(os.RemoveAll(tmp))
		out := filepath.Join("examples", name, snapshot.FileObjects)
		check(os.WriteFile(out, b, 0o644))
		fmt.Println("wrote", out)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// uid makes a stable, realistic-looking UID from a seed.
func uid(seed string) types.UID {
	h := uint64(14695981039346656037)
	for _, c := range []byte(seed) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	g := h * 0x9E3779B97F4A7C15
	return types.UID(fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff,
		0x8000|uint16(g>>48)&0x3fff, g&0xffffffffffff))
}

func at(s string) metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	check(err)
	return metav1.NewTime(t)
}

func om(ns, name, created, rv string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid(ns + "/" + name), ResourceVersion: rv,
		CreationTimestamp: at(created), Labels: labels}
}

type port struct {
	name     string
	port     int32
	proto    corev1.Protocol
	target   intstr.IntOrString
	nodePort int32
}

func service(meta metav1.ObjectMeta, typ corev1.ServiceType, ip string, selector map[string]string, ports ...port) *corev1.Service {
	s := &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{
		Type: typ, ClusterIP: ip, ClusterIPs: []string{ip}, Selector: selector,
		SessionAffinity: corev1.ServiceAffinityNone, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
		InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
	}}
	if typ == corev1.ServiceTypeNodePort {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: p.name, Port: p.port, Protocol: p.proto,
			TargetPort: p.target, NodePort: p.nodePort})
	}
	return s
}

type ep struct {
	ip, node string
	pod      *corev1.Pod // nil for endpoints that are not pods (kubernetes)
}

// slice builds the EndpointSlice the endpointslice controller writes for
// svc: same labels plus service-name and managed-by, owned by the Service,
// with the last-change-trigger-time annotation.
func slice(svc *corev1.Service, suffix, created, rv, trigger string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	labels := map[string]string{
		discoveryv1.LabelServiceName: svc.Name,
		discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
	}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	name := svc.Name + "-" + suffix
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  om(svc.Namespace, name, created, rv, labels),
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	s.GenerateName = svc.Name + "-"
	s.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": trigger}
	s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}
		if e.node != "" {
			x.NodeName = ptr.To(e.node)
		}
		if e.pod != nil {
			x.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: e.pod.Namespace, Name: e.pod.Name, UID: e.pod.UID}
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	return s
}

// apiServerSlice is the EndpointSlice of default/kubernetes, written by the
// API server's endpoint reconciler: no owner, no node names.
func apiServerSlice(created, rv string, ips ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  om("default", "kubernetes", created, rv, map[string]string{discoveryv1.LabelServiceName: "kubernetes"}),
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{epPort("https", 6443, corev1.ProtocolTCP)},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

func epPort(name string, port int32, proto corev1.Protocol) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(proto)}
}

type container struct {
	name, image string
	port        int32
	proto       corev1.Protocol
	command     []string
}

func pod(meta metav1.ObjectMeta, node, hostIP, ip, started string, cs ...container) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: meta, Spec: corev1.PodSpec{
		NodeName: node, RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
		SchedulerName: corev1.DefaultSchedulerName, ServiceAccountName: "default",
		TerminationGracePeriodSeconds: ptr.To[int64](30), EnableServiceLinks: ptr.To(true),
		PreemptionPolicy: ptr.To(corev1.PreemptLowerPriority), Priority: ptr.To[int32](0),
		Tolerations: []corev1.Toleration{
			{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		},
	}}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: hostIP, HostIPs: []corev1.HostIP{{IP: hostIP}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: ptr.To(at(started)), QOSClass: corev1.PodQOSBestEffort}
	for _, ct := range []corev1.PodConditionType{corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: ct, Status: corev1.ConditionTrue, LastTransitionTime: at(started)})
	}
	for _, c := range cs {
		cc := corev1.Container{Name: c.name, Image: c.image, Command: c.command, ImagePullPolicy: corev1.PullIfNotPresent,
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile}
		if c.port != 0 {
			cc.Ports = []corev1.ContainerPort{{ContainerPort: c.port, Protocol: c.proto}}
		}
		p.Spec.Containers = append(p.Spec.Containers, cc)
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.name, Image: c.image, ImageID: "docker-pullable://" + c.image, Ready: true, Started: ptr.To(true),
			ContainerID: "docker://" + string(uid(p.Name + c.name))[:8] + string(uid(c.name + p.Name))[:8],
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(started)}},
		})
	}
	return p
}

type nodeInfo struct {
	name, ip, podCIDR, created, rv, kubelet, os, kernel, runtime string
	annotations                                                  map[string]string
	cpu, mem                                                     string
}

func node(n nodeInfo) *corev1.Node {
	x := &corev1.Node{ObjectMeta: om("", n.name, n.created, n.rv, map[string]string{
		"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
		"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux",
	})}
	x.Annotations = n.annotations
	x.Spec.PodCIDR = n.podCIDR
	if n.podCIDR != "" {
		x.Spec.PodCIDRs = []string{n.podCIDR}
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(n.cpu), corev1.ResourceMemory: resource.MustParse(n.mem),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("102685624Ki")}
	x.Status = corev1.NodeStatus{
		Capacity: res, Allocatable: res,
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: n.kubelet, KubeProxyVersion: n.kubelet, OSImage: n.os,
			KernelVersion: n.kernel, ContainerRuntimeVersion: n.runtime, OperatingSystem: "linux", Architecture: "amd64",
			MachineID: string(uid("machine" + n.name))[:8] + "f1c04a6b9e2d4c7a8b3f5e6d", SystemUUID: string(uid("system" + n.name)),
			BootID: string(uid("boot" + n.name))},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
	}
	hb := at(n.created).Add(400 * 24 * time.Hour)
	for _, c := range []struct {
		t               corev1.NodeConditionType
		s               corev1.ConditionStatus
		reason, message string
	}{
		{corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
		{corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"},
	} {
		x.Status.Conditions = append(x.Status.Conditions, corev1.NodeCondition{Type: c.t, Status: c.s, Reason: c.reason,
			Message: c.message, LastHeartbeatTime: metav1.NewTime(hb), LastTransitionTime: at(n.created)})
	}
	return x
}

func configMap(ns, name, created, rv string, labels, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: om(ns, name, created, rv, labels), Data: data}
}

const kubeconfigConf = `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: %s
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
`

// walkthrough is the cluster of datapath-walkthrough.md sections 2 and 3.
func walkthrough() snapshot.Objects {
	kubernetes := service(om("default", "kubernetes", "2019-03-04T09:12:40Z", "6", map[string]string{"component": "apiserver", "provider": "kubernetes"}),
		corev1.ServiceTypeClusterIP, "10.96.0.1", nil, port{"https", 443, corev1.ProtocolTCP, intstr.FromInt32(6443), 0})
	dnsLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "KubeDNS"}
	kubeDNS := service(om("kube-system", "kube-dns", "2019-03-04T09:12:44Z", "213", dnsLabels), corev1.ServiceTypeClusterIP, "10.96.0.10",
		map[string]string{"k8s-app": "kube-dns"},
		port{"dns", 53, corev1.ProtocolUDP, intstr.FromInt32(53), 0}, port{"dns-tcp", 53, corev1.ProtocolTCP, intstr.FromInt32(53), 0})
	kubeDNS.Annotations = map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
	test := service(om("default", "test", "2019-03-12T09:25:03Z", "1179331", map[string]string{"app": "nginx"}), corev1.ServiceTypeClusterIP,
		"10.99.64.233", map[string]string{"app": "nginx"}, port{"", 9999, corev1.ProtocolTCP, intstr.FromInt32(80), 0})

	nginx := func(name, ip, started string) *corev1.Pod {
		p := pod(om("default", name, started, "1179"+fmt.Sprint(len(name)*37), map[string]string{"app": "nginx"}),
			"worker-1", "192.168.2.2", ip, started, container{name: "nginx", image: "nginx:1.15", port: 80, proto: corev1.ProtocolTCP})
		p.Annotations = map[string]string{"cni.projectcalico.org/podIP": ip + "/32"}
		return p
	}
	nginx1 := nginx("nginx1", "10.1.139.84", "2019-03-12T09:21:37Z")
	nginx2 := nginx("nginx2", "10.1.139.93", "2019-03-12T09:21:41Z")
	client := pod(om("default", "client", "2019-03-12T09:30:12Z", "1179502", map[string]string{"run": "client"}),
		"worker-2", "192.168.2.3", "10.1.236.141", "2019-03-12T09:30:12Z",
		container{name: "client", image: "busybox:1.28", command: []string{"sleep", "3600"}})
	client.Annotations = map[string]string{"cni.projectcalico.org/podIP": "10.1.236.141/32"}
	coredns := pod(om("kube-system", "coredns-fb8b8dccf-x4nvq", "2019-03-04T09:12:58Z", "1034",
		map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "fb8b8dccf"}),
		"worker-1", "192.168.2.2", "10.1.139.70", "2019-03-04T09:14:02Z",
		container{name: "coredns", image: "k8s.gcr.io/coredns:1.3.1", port: 53, proto: corev1.ProtocolUDP})
	coredns.Spec.Containers[0].Ports = append(coredns.Spec.Containers[0].Ports,
		corev1.ContainerPort{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP})
	coredns.Spec.Containers[0].Ports[0].Name = "dns"
	coredns.Spec.ServiceAccountName = "coredns"
	coredns.Spec.PriorityClassName = "system-cluster-critical"
	coredns.Spec.Priority = ptr.To[int32](2000000000)
	coredns.Annotations = map[string]string{"cni.projectcalico.org/podIP": "10.1.139.70/32"}
	coredns.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "coredns-fb8b8dccf",
		UID: uid("kube-system/coredns-fb8b8dccf"), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}

	workers := []*corev1.Node{}
	for _, w := range []struct{ name, ip, tunnel string }{{"worker-1", "192.168.2.2", "10.1.139.64"}, {"worker-2", "192.168.2.3", "10.1.236.128"}} {
		workers = append(workers, node(nodeInfo{name: w.name, ip: w.ip, created: "2019-03-04T09:15:" + w.ip[len(w.ip)-1:] + "1Z",
			rv: "1180" + w.ip[len(w.ip)-1:] + "07", kubelet: "v1.10.13", os: "Ubuntu 18.04.2 LTS", kernel: "4.15.0-46-generic",
			runtime: "docker://17.3.2", cpu: "8", mem: "32779004Ki",
			annotations: map[string]string{
				"kubeadm.alpha.kubernetes.io/cri-socket":                 "/var/run/dockershim.sock",
				"node.alpha.kubernetes.io/ttl":                           "0",
				"projectcalico.org/IPv4Address":                          w.ip + "/24",
				"projectcalico.org/IPv4IPIPTunnelAddr":                   w.tunnel,
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			}}))
	}
	kubeProxy := configMap("kube-system", "kube-proxy", "2019-03-04T09:12:45Z", "231", map[string]string{"app": "kube-proxy"}, map[string]string{
		"config.conf": `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  acceptContentTypes: ""
  burst: 10
  contentType: application/vnd.kubernetes.protobuf
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 5
clusterCIDR: 10.1.0.0/16
configSyncPeriod: 15m0s
conntrack:
  max: null
  maxPerCore: 32768
  min: 131072
  tcpCloseWaitTimeout: 1h0m0s
  tcpEstablishedTimeout: 24h0m0s
enableProfiling: false
healthzBindAddress: 0.0.0.0:10256
hostnameOverride: ""
iptables:
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 0s
  syncPeriod: 30s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  syncPeriod: 30s
kind: KubeProxyConfiguration
metricsBindAddress: 127.0.0.1:10249
mode: "iptables"
nodePortAddresses: null
oomScoreAdj: -999
portRange: ""
resourceContainer: /kube-proxy
udpIdleTimeout: 250ms
`,
		"kubeconfig.conf": fmt.Sprintf(kubeconfigConf, "https://192.168.2.1:6443"),
	})
	return snapshot.Objects{
		Services: []*corev1.Service{kubernetes, kubeDNS, test},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			apiServerSlice("2019-03-04T09:12:40Z", "8", "192.168.2.1"),
			slice(kubeDNS, "5xtnp", "2019-03-04T09:12:44Z", "1041", "2019-03-04T09:14:05Z",
				[]discoveryv1.EndpointPort{epPort("dns", 53, corev1.ProtocolUDP), epPort("dns-tcp", 53, corev1.ProtocolTCP)},
				ep{"10.1.139.70", "worker-1", coredns}),
			slice(test, "k8fjq", "2019-03-12T09:25:03Z", "1179334", "2019-03-12T09:25:03Z",
				[]discoveryv1.EndpointPort{epPort("", 80, corev1.ProtocolTCP)},
				ep{"10.1.139.84", "worker-1", nginx1}, ep{"10.1.139.93", "worker-1", nginx2}),
		},
		Pods:       []*corev1.Pod{client, nginx1, nginx2, coredns},
		Nodes:      workers,
		ConfigMaps: []*corev1.ConfigMap{kubeProxy},
	}
}

// v134 is the one-node cluster of the kube-proxy v1.34 samples.
func v134() snapshot.Objects {
	kubernetes := service(om("default", "kubernetes", "2026-11-21T04:31:02Z", "196", map[string]string{"component": "apiserver", "provider": "kubernetes"}),
		corev1.ServiceTypeClusterIP, "10.96.0.1", nil, port{"https", 443, corev1.ProtocolTCP, intstr.FromInt32(6443), 0})
	web := service(om("default", "web", "2026-11-21T04:32:47Z", "402", map[string]string{"app": "web"}), corev1.ServiceTypeClusterIP,
		"10.96.0.100", map[string]string{"app": "web"}, port{"http", 80, corev1.ProtocolTCP, intstr.FromInt32(8080), 0})
	backend := func(name, ip, started, rv string) *corev1.Pod {
		p := pod(om("default", name, started, rv, map[string]string{"app": "web"}), "node1", "10.200.0.10", ip, started,
			container{name: "web", image: "svcpath.dev/lab/http-echo:v0.1.0", port: 8080, proto: corev1.ProtocolTCP})
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
		p.Status.ContainerStatuses[0].ImageID = "sha256:" + fmt.Sprintf("%x", []byte(uid(name)))[:64]
		p.Status.ContainerStatuses[0].ContainerID = "containerd://" + fmt.Sprintf("%x", []byte(uid("c"+name)))[:64]
		return p
	}
	webA := backend("web-a", "10.244.1.10", "2026-11-21T04:32:49Z", "437")
	webB := backend("web-b", "10.244.1.11", "2026-11-21T04:32:49Z", "441")
	client := pod(om("default", "client", "2026-11-21T04:32:50Z", "445", map[string]string{"app": "client"}), "node1", "10.200.0.10",
		"10.244.1.20", "2026-11-21T04:32:50Z", container{name: "client", image: "svcpath.dev/lab/http-echo:v0.1.0", command: []string{"/http-echo", "-sleep"}})
	client.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	client.Status.ContainerStatuses[0].ImageID = "sha256:" + fmt.Sprintf("%x", []byte(uid("client")))[:64]
	client.Status.ContainerStatuses[0].ContainerID = "containerd://" + fmt.Sprintf("%x", []byte(uid("cclient")))[:64]
	n := node(nodeInfo{name: "node1", ip: "10.200.0.10", podCIDR: "10.244.1.0/24", created: "2026-11-21T04:31:20Z", rv: "512",
		kubelet: "v1.34.4", os: "Debian GNU/Linux 12 (bookworm)", kernel: "6.18.44-fc-v669", runtime: "containerd://1.6.20",
		cpu: "2", mem: "24588200Ki",
		annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}})
	n.Status.NodeInfo.KubeProxyVersion = "" // deprecated, no longer set by kubelet v1.31+
	kubeProxy := configMap("kube-system", "kube-proxy", "2026-11-21T04:31:05Z", "221", map[string]string{"app": "kube-proxy"}, map[string]string{
		"config.conf": `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 15m0s
conntrack:
  maxPerCore: 32768
  min: 131072
  tcpCloseWaitTimeout: 1h0m0s
  tcpEstablishedTimeout: 24h0m0s
healthzBindAddress: 0.0.0.0:10256
hostnameOverride: node1
iptables:
  localhostNodePorts: true
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
metricsBindAddress: 127.0.0.1:10249
mode: "iptables"
nftables:
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
nodePortAddresses: null
`,
		"kubeconfig.conf": fmt.Sprintf(kubeconfigConf, "https://10.200.0.10:6443"),
	})
	return snapshot.Objects{
		Services: []*corev1.Service{kubernetes, web},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			apiServerSlice("2026-11-21T04:31:02Z", "198", "10.200.0.10"),
			slice(web, "r9w4t", "2026-11-21T04:32:47Z", "452", "2026-11-21T04:32:51Z",
				[]discoveryv1.EndpointPort{epPort("http", 8080, corev1.ProtocolTCP)},
				ep{"10.244.1.10", "node1", webA}, ep{"10.244.1.11", "node1", webB}),
		},
		Pods:       []*corev1.Pod{client, webA, webB},
		Nodes:      []*corev1.Node{n},
		ConfigMaps: []*corev1.ConfigMap{kubeProxy},
	}
}

// cniBridge is the cluster of datapath-walkthrough.md sections 4 and 5:
// the CNI bridge plugin with ipMasq, kube-proxy configured by a file (no
// ConfigMap), three API servers behind default/kubernetes.
func cniBridge() snapshot.Objects {
	kubernetes := service(om("default", "kubernetes", "2019-05-20T14:02:11Z", "9", map[string]string{"component": "apiserver", "provider": "kubernetes"}),
		corev1.ServiceTypeClusterIP, "10.32.0.1", nil, port{"https", 443, corev1.ProtocolTCP, intstr.FromInt32(6443), 0})
	dnsLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	kubeDNS := service(om("kube-system", "kube-dns", "2019-05-20T14:31:40Z", "1907", dnsLabels), corev1.ServiceTypeClusterIP, "10.32.0.10",
		map[string]string{"k8s-app": "kube-dns"},
		port{"dns", 53, corev1.ProtocolUDP, intstr.FromInt32(53), 0}, port{"dns-tcp", 53, corev1.ProtocolTCP, intstr.FromInt32(53), 0})
	nginxSvc := service(om("default", "nginx", "2019-05-20T15:10:26Z", "5821", map[string]string{"run": "nginx"}), corev1.ServiceTypeNodePort,
		"10.32.0.53", map[string]string{"run": "nginx"}, port{"", 80, corev1.ProtocolTCP, intstr.FromInt32(80), 31088})

	coredns := pod(om("kube-system", "coredns-699f8ddd77-7lq2x", "2019-05-20T14:31:40Z", "2210",
		map[string]string{"k8s-app": "kube-dns", "pod-template-hash": "699f8ddd77"}),
		"worker-0", "10.240.0.20", "10.200.0.27", "2019-05-20T16:02:18Z",
		container{name: "coredns", image: "coredns/coredns:1.2.2", port: 53, proto: corev1.ProtocolUDP})
	coredns.Spec.Containers[0].Ports[0].Name = "dns"
	coredns.Spec.Containers[0].Ports = append(coredns.Spec.Containers[0].Ports,
		corev1.ContainerPort{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP})
	coredns.Spec.ServiceAccountName = "coredns"
	coredns.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "coredns-699f8ddd77",
		UID: uid("kube-system/coredns-699f8ddd77"), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	busybox := pod(om("default", "busybox", "2019-05-20T15:02:51Z", "5233", map[string]string{"run": "busybox"}),
		"worker-0", "10.240.0.20", "10.200.0.21", "2019-05-20T15:02:53Z",
		container{name: "busybox", image: "busybox:1.28", command: []string{"sleep", "3600"}})
	nginx := pod(om("default", "nginx-7cdbd8cdc9-hpdkn", "2019-05-20T15:09:12Z", "5790",
		map[string]string{"run": "nginx", "pod-template-hash": "7cdbd8cdc9"}),
		"worker-1", "10.240.0.21", "10.200.1.18", "2019-05-20T15:09:15Z",
		container{name: "nginx", image: "nginx", port: 80, proto: corev1.ProtocolTCP})
	nginx.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "nginx-7cdbd8cdc9",
		UID: uid("default/nginx-7cdbd8cdc9"), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	remote := pod(om("default", "busybox-w1", "2019-05-20T15:04:30Z", "5301", map[string]string{"run": "busybox-w1"}),
		"worker-1", "10.240.0.21", "10.200.1.15", "2019-05-20T15:04:32Z",
		container{name: "busybox-w1", image: "busybox:1.28", command: []string{"sleep", "3600"}})
	for _, p := range []*corev1.Pod{coredns, busybox, nginx, remote} {
		for i := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[i]
			cs.ContainerID = "containerd://" + fmt.Sprintf("%x", []byte(uid("c"+p.Name)))[:64]
			cs.ImageID = "docker.io/library/" + cs.Image + "@sha256:" + fmt.Sprintf("%x", []byte(uid("i"+cs.Image)))[:64]
		}
	}
	var workers []*corev1.Node
	for i, ip := range []string{"10.240.0.20", "10.240.0.21"} {
		workers = append(workers, node(nodeInfo{name: fmt.Sprintf("worker-%d", i), ip: ip, podCIDR: fmt.Sprintf("10.200.%d.0/24", i),
			created: fmt.Sprintf("2019-05-20T14:1%d:33Z", i+2), rv: fmt.Sprintf("61%d2", i+3), kubelet: "v1.12.0",
			os: "Ubuntu 18.04.1 LTS", kernel: "4.15.0-1021-gcp", runtime: "containerd://Unknown", cpu: "2", mem: "7657208Ki",
			annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}}))
	}
	return snapshot.Objects{
		Services: []*corev1.Service{kubernetes, kubeDNS, nginxSvc},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			apiServerSlice("2019-05-20T14:02:11Z", "11", "10.240.0.10", "10.240.0.11", "10.240.0.12"),
			slice(kubeDNS, "m2xkz", "2019-05-20T14:31:40Z", "2214", "2019-05-20T16:02:21Z",
				[]discoveryv1.EndpointPort{epPort("dns", 53, corev1.ProtocolUDP), epPort("dns-tcp", 53, corev1.ProtocolTCP)},
				ep{"10.200.0.27", "worker-0", coredns}),
			slice(nginxSvc, "z7b2c", "2019-05-20T15:10:26Z", "5823", "2019-05-20T15:10:26Z",
				[]discoveryv1.EndpointPort{epPort("", 80, corev1.ProtocolTCP)}, ep{"10.200.1.18", "worker-1", nginx}),
		},
		Pods:  []*corev1.Pod{busybox, coredns, remote, nginx},
		Nodes: workers,
	}
}
