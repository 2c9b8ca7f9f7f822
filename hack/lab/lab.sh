#!/usr/bin/env bash
# The svcpath e2e lab: a real one-node Kubernetes cluster (etcd,
# kube-apiserver, kube-controller-manager, containerd + runc + bridge CNI,
# kubelet, kube-proxy) running on this machine inside one network namespace.
#
#   hack/lab/lab.sh up [iptables|nftables]   start (or switch kube-proxy's mode)
#   hack/lab/lab.sh down                     stop everything, restore the machine
#   hack/lab/lab.sh env                      print KUBECONFIG and the nsenter prefix
#   hack/lab/lab.sh shell                    a shell inside the lab (kubectl svcpath works there)
#   hack/lab/lab.sh status                   what runs
#   hack/lab/lab.sh reload                   rebuild plugin, agent and images from the working tree
#   hack/lab/lab.sh proxy-stop|proxy-start   stop / start kube-proxy (the e2e tests use it)
#
# Everything networked runs in the network namespace $LAB_NAME; daemons share
# the root mount namespace. Nothing is added to the root network namespace.
# The lab's files live in $LAB (default /var/tmp/svcpath-lab) and the build
# cache in $SVCPATH_LAB_CACHE (default ~/.cache/svcpath-lab). Paths outside
# those that the daemons create anyway (/run/containerd, /var/lib/cni, ...)
# are recorded at `up` when they do not exist yet, and removed by `down`; the
# machine-wide sysctls kubelet rewrites are saved and restored. See
# ../../shared/reference/real-cluster-lab.md for why each step is the way it is.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
LAB_NAME=${SVCPATH_LAB_NAME:-svcpath-lab}
LAB=${SVCPATH_LAB_DIR:-/var/tmp/$LAB_NAME}
NETNS=$LAB_NAME
NS_PATH=/run/netns/$NETNS
NODE=${SVCPATH_LAB_NODE:-lab-node}
NODE_IP=10.250.0.2
NODE_GW=10.250.0.1
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
API_SVC_IP=10.96.0.1
AGENT_IMAGE=svcpath.local/svcpath-agent:lab
export K8S_VERSION=${K8S_VERSION:-v1.34.4}
CACHE=${SVCPATH_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/svcpath-lab}
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
# The machine-wide sysctls kubelet rewrites at start (plus its keyring ones).
# (hack/lab/machine-state.sh reads this line.)
MACHINE_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Paths outside $LAB that containerd, the CNI plugins or kubelet create.
FOREIGN_PATHS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /opt/containerd /var/lib/containerd /etc/cni /run/netns)
CGROUP_ROOT=/$LAB_NAME
SOCK=$LAB/containerd/containerd.sock
PACKAGES=(curl etcd-server containerd runc containernetworking-plugins iptables nftables conntrack iproute2 openssl util-linux)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
in_ns() { nsenter --net="$NS_PATH" -- "$@"; }
now_ms() { date +%s%3N; }

pid_alive() { # pid_alive NAME: the daemon NAME started by this lab runs
	local f=$LAB/run/$1.pid pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start_daemon() { # start_daemon NAME CMD...: run CMD in the lab netns, in the background
	local name=$1
	shift
	mkdir -p "$LAB/run" "$LAB/logs"
	nsenter --net="$NS_PATH" -- "$@" >>"$LAB/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$LAB/run/$name.pid"
}

stop_daemon() { # stop_daemon NAME: SIGTERM, up to 10 s, then SIGKILL
	local f=$LAB/run/$1.pid pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

wait_for() { # wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "timed out after ${secs}s waiting for $what (logs: $LAB/logs)"
}

kc() { in_ns kubectl --kubeconfig "$LAB/pki/admin.kubeconfig" "$@"; }

ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root"
	log "installing ${missing[*]} (services are not started)"
	# Debian's etcd-server would start etcd on the root namespace's
	# 127.0.0.1:2379: forbid service starts during the install.
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	apt-get update -qq </dev/null >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
	[ -n "$made_policy" ] && rm -f "$policy"
	return 0
}

# ---------------------------------------------------------------- images

build_images() {
	local img=$LAB/images bin=$LAB/images/bin
	mkdir -p "$img" "$bin"
	log "building images (pause, echo, svcpath-agent) from $REPO"
	(cd "$REPO" && CGO_ENABLED=0 "$GO" build -trimpath -o "$bin/" ./hack/lab/images/pause ./hack/lab/images/echo ./hack/lab/mkimage)
	# The lab's own build of the plugin and agent, whose default agent image
	# is the one imported below; `lab.sh env` puts $LAB/bin first on PATH.
	mkdir -p "$LAB/bin"
	(cd "$REPO" && make -s build BIN="$LAB/bin/kubectl-svcpath" AGENT_BIN="$LAB/bin/svcpath-agent" AGENT_IMAGE="$AGENT_IMAGE" >/dev/null)
	"$bin/mkimage" -name svcpath.local/pause:lab -o "$img/pause.tar" -file "$bin/pause:/pause" -entrypoint /pause
	"$bin/mkimage" -name svcpath.local/echo:lab -o "$img/echo.tar" -file "$bin/echo:/echo" -entrypoint /echo -cmd serve
	# The agent image: the plugin's own agent binary plus the node tools it
	# runs, copied from this machine with their libraries (what
	# hack/agent.Dockerfile installs from Debian in a release).
	local tools=() t
	for t in iptables iptables-save iptables-restore iptables-nft iptables-nft-save iptables-nft-restore \
		iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables ip6tables-save \
		ip6tables-nft ip6tables-nft-save ip6tables-legacy ip6tables-legacy-save nft ip conntrack ipvsadm; do
		command -v "$t" >/dev/null 2>&1 && tools+=(-host-tool "$t")
	done
	# iptables' match and target plugins, loaded with dlopen.
	local xt=/usr/lib/x86_64-linux-gnu/xtables
	[ -d "$xt" ] || die "no $xt (Debian's iptables package)"
	"$bin/mkimage" -name "$AGENT_IMAGE" -o "$img/agent.tar" \
		-file "$LAB/bin/svcpath-agent:/svcpath-agent" -entrypoint /svcpath-agent -cmd collect \
		-file /etc/protocols:/etc/protocols -file /etc/services:/etc/services \
		-dir "$xt:/usr/lib/x86_64-linux-gnu/xtables" -deps-of "$xt" "${tools[@]}"
}

import_images() {
	local t ctr=(ctr -a "$SOCK" -n k8s.io)
	for t in pause echo agent; do
		"${ctr[@]}" images import "$LAB/images/$t.tar" >/dev/null
	done
}

# ---------------------------------------------------------------- PKI

pki() {
	local d=$LAB/pki
	[ -f "$d/done" ] && return 0
	rm -rf "$d"
	mkdir -p "$d"
	log "creating a throwaway CA and certificates"
	openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -out "$d/ca.crt" -days 30 -subj "/CN=$LAB_NAME-ca" 2>/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
	openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	cert apiserver "/CN=kube-apiserver" "IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters"
	cert admin "/CN=lab-admin/O=system:masters"
	cert controller-manager "/CN=system:kube-controller-manager"
	cert kube-proxy "/CN=system:kube-proxy"
	cert kubelet "/CN=system:node:$NODE/O=system:nodes"
	local u
	for u in admin controller-manager kube-proxy kubelet; do
		kubeconfig "$d/$u.kubeconfig" "$d/$u.crt" "$d/$u.key"
	done
	touch "$d/done"
}

cert() { # cert NAME SUBJECT [SANS]
	local d=$LAB/pki ext
	ext="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
	[ -n "${3:-}" ] && ext="$ext
subjectAltName=$3"
	openssl ecparam -name prime256v1 -genkey -noout -out "$d/$1.key" 2>/dev/null
	openssl req -new -key "$d/$1.key" -subj "$2" 2>/dev/null |
		openssl x509 -req -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
			-extfile <(echo "$ext") -out "$d/$1.crt" 2>/dev/null
}

kubeconfig() { # kubeconfig FILE CERT KEY
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $LAB_NAME
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority: $LAB/pki/ca.crt
users:
- name: user
  user:
    client-certificate: $2
    client-key: $3
contexts:
- name: $LAB_NAME
  context: {cluster: $LAB_NAME, user: user}
current-context: $LAB_NAME
EOF
}

# ---------------------------------------------------------------- machine state

record_machine() {
	[ -f "$LAB/saved/sysctls" ] && return 0
	mkdir -p "$LAB/saved"
	local s p
	for s in "${MACHINE_SYSCTLS[@]}"; do
		echo "$s=$(sysctl -n "$s")"
	done >"$LAB/saved/sysctls.tmp"
	for p in "${FOREIGN_PATHS[@]}"; do
		[ -e "$p" ] || echo "$p"
	done >"$LAB/saved/created-paths"
	date +%s >"$LAB/saved/started"
	mv "$LAB/saved/sysctls.tmp" "$LAB/saved/sysctls"
}

restore_machine() {
	local line p
	if [ -f "$LAB/saved/sysctls" ]; then
		while IFS= read -r line; do
			[ "$(sysctl -n "${line%%=*}")" = "${line#*=}" ] || sysctl -q -w "$line" >/dev/null || log "could not restore $line"
		done <"$LAB/saved/sysctls"
	fi
	if [ -f "$LAB/saved/created-paths" ]; then
		while IFS= read -r p; do
			[ -e "$p" ] || continue
			if [ "$p" = /run/netns ]; then
				# ip netns add made /run/netns a mount; undo that only when no
				# other namespace lives there.
				[ -z "$(ls -A /run/netns 2>/dev/null)" ] || continue
				while mountpoint -q /run/netns; do umount /run/netns 2>/dev/null || break; done
				rmdir /run/netns 2>/dev/null || true
				continue
			fi
			rm -rf --one-file-system "$p"
		done <"$LAB/saved/created-paths"
	fi
	# kubelet links every container log into /var/log/containers.
	if [ -d /var/log/containers ]; then
		find /var/log/containers -maxdepth 1 -type l -lname "$LAB/*" -delete 2>/dev/null || true
	fi
	rm -rf "$LAB/saved"
}

# ---------------------------------------------------------------- network

make_netns() {
	if [ -e "$NS_PATH" ]; then return 0; fi
	log "creating network namespace $NETNS (node $NODE at $NODE_IP)"
	ip netns add "$NETNS"
	# No dummy links in this kernel: the node's address sits on one end of a
	# veth pair whose both ends stay in the namespace; the default route
	# points into it and ends there.
	ip -n "$NETNS" link add lab0 type veth peer name lab1
	ip -n "$NETNS" link set lo up
	ip -n "$NETNS" link set lab0 up
	ip -n "$NETNS" link set lab1 up
	ip -n "$NETNS" addr add "$NODE_IP/24" dev lab0
	ip -n "$NETNS" route add default via "$NODE_GW" dev lab0
	in_ns sysctl -q -w net.ipv4.ip_forward=1
	in_ns sysctl -q -w net.ipv6.conf.all.forwarding=1
	# Per network namespace since Linux 5.3.
	in_ns sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "net.bridge.bridge-nf-call-iptables not settable here"
	in_ns sysctl -q -w net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true
}

# ---------------------------------------------------------------- configs

write_configs() {
	local mode=$1 c=$LAB/config
	mkdir -p "$c" "$LAB/cni/net.d" "$LAB/cni/ipam" "$LAB/cni/cache" "$LAB/containerd" "$LAB/kubelet" "$LAB/pod-logs"
	cat >"$c/containerd.toml" <<EOF
version = 2
root = "$LAB/containerd/root"
state = "$LAB/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$LAB/containerd/containerd.sock.ttrpc"
[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "svcpath.local/pause:lab"
  # root has no CAP_SYS_RESOURCE here: without this every sandbox fails.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$LAB/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB/cni/net.d"
EOF
	cat >"$LAB/cni/net.d/10-$LAB_NAME.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$LAB_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$LAB/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
	echo "nameserver 127.0.0.1" >"$c/resolv.conf"
	cat >"$c/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LAB/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix://$SOCK
failSwapOn: false
clusterDomain: cluster.local
resolvConf: $c/resolv.conf
podLogsDir: $LAB/pod-logs
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
localStorageCapacityIsolation: false
nodeStatusReportFrequency: 10s
EOF
	write_proxy_config "$mode"
}

write_proxy_config() {
	cat >"$LAB/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $LAB/pki/kube-proxy.kubeconfig
mode: $1
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  # 0: leave the machine-wide nf_conntrack_max and the timeouts alone.
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
	echo "$1" >"$LAB/mode"
}

# ---------------------------------------------------------------- daemons

start_control_plane() {
	local p=$LAB/pki
	if ! pid_alive etcd; then
		mkdir -p "$LAB/etcd"
		start_daemon etcd etcd --name "$LAB_NAME" --data-dir "$LAB/etcd" \
			--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
			--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
			--initial-cluster "$LAB_NAME=http://127.0.0.1:2380"
		wait_for 30 etcd in_ns curl -sf http://127.0.0.1:2379/health
	fi
	if ! pid_alive kube-apiserver; then
		start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
			--etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port=6443 \
			--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
			--service-cluster-ip-range="$SVC_CIDR" \
			--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
			--service-account-issuer=https://kubernetes.default.svc.cluster.local \
			--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
			--kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
			--kubelet-preferred-address-types=InternalIP,Hostname \
			--allow-privileged=true --profiling=false --event-ttl=1h
		wait_for 60 kube-apiserver kc get --raw /readyz
	fi
	if ! pid_alive kube-controller-manager; then
		start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
			--kubeconfig="$p/controller-manager.kubeconfig" \
			--authentication-kubeconfig="$p/controller-manager.kubeconfig" --authorization-kubeconfig="$p/controller-manager.kubeconfig" \
			--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" --use-service-account-credentials=true \
			--allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 --service-cluster-ip-range="$SVC_CIDR" \
			--bind-address=127.0.0.1 --leader-elect=false --profiling=false
	fi
}

make_cgroups() {
	local c
	for c in /sys/fs/cgroup/*/; do
		case $c in */unified/) continue ;; esac
		mkdir -p "$c${CGROUP_ROOT#/}"
	done
}

remove_cgroups() {
	local c d
	for c in /sys/fs/cgroup/*/; do
		d=$c${CGROUP_ROOT#/}
		[ -d "$d" ] || continue
		# Deepest first; a cgroup with a live task cannot go.
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -d "$d" ] && log "cgroup $d still has tasks"
	done
	return 0
}

start_node() {
	if ! pid_alive containerd; then
		start_daemon containerd containerd --config "$LAB/config/containerd.toml"
		wait_for 30 containerd ctr -a "$SOCK" version
	fi
	import_images
	make_cgroups
	if ! pid_alive kubelet; then
		start_daemon kubelet "$K8S_BIN/kubelet" --config="$LAB/config/kubelet.yaml" \
			--kubeconfig="$LAB/pki/kubelet.kubeconfig" --root-dir="$LAB/kubelet" \
			--hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
	fi
	wait_for 60 "node $NODE to register" kc get node "$NODE"
	# kube-proxy reads its mode from a flag file here; the ConfigMap is what
	# kubeadm-style clusters carry and what `kubectl svcpath` reads.
	kc -n kube-system create configmap kube-proxy --from-file=config.conf="$LAB/config/kube-proxy.yaml" \
		--dry-run=client -o yaml | kc apply -f - >/dev/null
	start_proxy
	wait_for 90 "node $NODE Ready" node_ready
	wait_for 60 "kube-proxy healthz" in_ns curl -sf http://127.0.0.1:10256/healthz
}

node_ready() {
	[ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

start_proxy() {
	pid_alive kube-proxy && return 0
	start_daemon kube-proxy "$K8S_BIN/kube-proxy" --config="$LAB/config/kube-proxy.yaml"
}

# ---------------------------------------------------------------- teardown

delete_pods() {
	pid_alive kube-apiserver && pid_alive kubelet || return 0
	# Graceful deletion: the API object goes only when kubelet has stopped
	# the containers and torn down each sandbox's network.
	kc delete pods --all -A --grace-period=1 --wait=true --timeout=45s >/dev/null 2>&1 || log "some pods did not stop in 45s"
}

kill_containers() {
	pid_alive containerd || return 0
	local ctr=(ctr -a "$SOCK" -n k8s.io) id ns
	# Remember each container's network namespace before anything goes.
	for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
		"${ctr[@]}" containers info "$id" 2>/dev/null | grep -o '"/var/run/netns/cni-[^"]*"' | tr -d '"' >>"$LAB/run/pod-netns" || true
	done
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	sleep 0.5
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
	done
	for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
		"${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
	done
}

kill_shims() {
	# Shims re-parent to init; they are ours when they talk to our socket.
	local pid
	for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

unmount_lab() {
	local m
	# Deepest first.
	{ findmnt -rn -o TARGET | grep -F "$LAB/" || true; } | sort -r | while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
	done
}

remove_pod_netns() {
	local n
	if [ -f "$LAB/run/pod-netns" ]; then
		sort -u "$LAB/run/pod-netns" | while IFS= read -r n; do
			n=${n#/var}
			[ -e "$n" ] || continue
			umount "$n" 2>/dev/null || true
			rm -f "$n"
		done
	fi
}

down() {
	[ -d "$LAB" ] || { log "nothing to do ($LAB does not exist)"; return 0; }
	log "tearing down"
	local t0
	t0=$(now_ms)
	delete_pods
	stop_daemon kube-proxy
	stop_daemon kubelet
	stop_daemon kube-controller-manager
	kill_containers
	stop_daemon containerd
	kill_shims
	stop_daemon kube-apiserver
	stop_daemon etcd
	unmount_lab
	remove_pod_netns
	if [ -e "$NS_PATH" ]; then ip netns del "$NETNS"; fi
	remove_cgroups
	restore_machine
	# Keep the logs (and the built images) for a post-mortem; the rest goes.
	find "$LAB" -mindepth 1 -maxdepth 1 ! -name logs ! -name images ! -name bin -exec rm -rf --one-file-system {} +
	log "down in $(( ($(now_ms) - t0) )) ms"
}

# ---------------------------------------------------------------- commands

up() {
	local mode=${1:-iptables}
	case $mode in iptables | nftables) ;; *) die "unknown kube-proxy mode $mode (iptables or nftables)" ;; esac
	[ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces, containerd, kubelet)"
	if [ -f "$LAB/mode" ] && pid_alive kube-proxy && pid_alive kubelet && pid_alive kube-apiserver; then
		if [ "$(cat "$LAB/mode")" = "$mode" ]; then
			log "already up in $mode mode"
			return 0
		fi
		log "switching from $(cat "$LAB/mode") to $mode mode: restarting the lab"
		down
	fi
	ensure_packages
	"$REPO/hack/lab/build-k8s.sh"
	local t0
	t0=$(now_ms)
	mkdir -p "$LAB/logs"
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed (rc $rc): tearing down; logs in $LAB/logs"; down; fi' EXIT
	record_machine
	build_images
	local t1
	t1=$(now_ms)
	make_netns
	pki
	write_configs "$mode"
	start_control_plane
	start_node
	trap - EXIT
	write_env
	log "up in $mode mode: $(( ($(now_ms) - t0) )) ms (cluster $(( ($(now_ms) - t1) )) ms after images); run: $0 shell"
}

write_env() {
	cat >"$LAB/env" <<EOF
export KUBECONFIG=$LAB/pki/admin.kubeconfig
export SVCPATH_LAB_NETNS=$NETNS
export SVCPATH_LAB_DIR=$LAB
export SVCPATH_LAB_NODE=$NODE
export SVCPATH_LAB_MODE=$(cat "$LAB/mode")
export SVCPATH_LAB_AGENT_IMAGE=$AGENT_IMAGE
export SVCPATH_LAB_ECHO_IMAGE=svcpath.local/echo:lab
# The lab's build of kubectl-svcpath (its default agent image is the lab's).
export PATH=$LAB/bin:\$PATH
# Run anything against the lab inside its network namespace:
export SVCPATH_LAB_NSENTER="nsenter --net=$NS_PATH --"
EOF
}

status() {
	local d
	for d in etcd kube-apiserver kube-controller-manager containerd kubelet kube-proxy; do
		if pid_alive "$d"; then echo "$d: running (pid $(cat "$LAB/run/$d.pid"))"; else echo "$d: stopped"; fi
	done
	[ -f "$LAB/mode" ] && echo "kube-proxy mode: $(cat "$LAB/mode")"
	[ -e "$NS_PATH" ] && echo "netns: $NETNS" || echo "netns: none"
}

case ${1:-} in
up) up "${2:-iptables}" ;;
down) down ;;
env)
	[ -f "$LAB/env" ] || die "the lab is not up (hack/lab/lab.sh up)"
	cat "$LAB/env"
	;;
shell)
	[ -f "$LAB/env" ] || die "the lab is not up (hack/lab/lab.sh up)"
	exec nsenter --net="$NS_PATH" -- env SVCPATH_LAB_ENV="$LAB/env" bash --rcfile <(echo "source ~/.bashrc 2>/dev/null; source $LAB/env; PS1='($LAB_NAME) \\w\\$ '; echo 'In the lab: kubectl get pods -A; kubectl svcpath default/kubernetes'") -i
	;;
status) status ;;
reload)
	# Rebuild the plugin, the agent and the images from the working tree and
	# import them into the running lab (new probe pods use them).
	pid_alive containerd || die "the lab is not up"
	build_images
	import_images
	write_env
	;;
proxy-stop) stop_daemon kube-proxy ;;
proxy-start)
	start_proxy
	wait_for 60 "kube-proxy healthz" in_ns curl -sf http://127.0.0.1:10256/healthz
	;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
