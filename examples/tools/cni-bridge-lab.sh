#!/usr/bin/env bash
# cni-bridge-lab.sh OUTDIR
#
# Rebuilds the two workers of the walkthrough's section 4/5 cluster (CNI
# bridge plugin with "ipMasq": true, kube-proxy in iptables mode) in network
# namespaces of its own: worker-0 10.240.0.20 (cnio0 10.200.0.1/24, pods
# busybox 10.200.0.21 and coredns 10.200.0.27), worker-1 10.240.0.21 (cnio0
# 10.200.1.1/24, pods busybox-w1 10.200.1.15 and nginx 10.200.1.18), a
# router namespace holding the VPC gateway 10.240.0.1 and an outside client
# 173.38.220.54. It loads examples/cni-bridge/nodes/*/iptables-save with
# iptables-legacy-restore, then sends the page's two flows: an ICMP echo from
# busybox to 10.200.1.15 (masqueraded by the CNI-* chain) and an HTTP request
# from outside to worker-0's NodePort 31088 (DNATed to the nginx pod on
# worker-1, SNATed by kube-proxy), and captures ip -j route/rule/link/addr,
# conntrack -L and iptables-save per node. RULES=DIR loads
# DIR/worker-{0,1}.rules instead. Deletes its namespaces on exit.
set -euo pipefail
OUT=${1:?usage: cni-bridge-lab.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
EX=$HERE/../cni-bridge
ID=svcpath-ex-$RANDOM$RANDOM
W0=$ID-w0 W1=$ID-w1 LAN=$ID-lan EXT=$ID-ext BB=$ID-busybox DNS=$ID-coredns BB1=$ID-busybox-w1 NGX=$ID-nginx
ALL=("$W0" "$W1" "$LAN" "$EXT" "$BB" "$DNS" "$BB1" "$NGX")
cleanup() {
	# Everything this script started runs inside its own namespaces.
	for ns in "${ALL[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap cleanup EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mkdir -p "$OUT/worker-0" "$OUT/worker-1"
for ns in "${ALL[@]}"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done

# The VPC: a router namespace with the gateway 10.240.0.1 and the outside.
nsx "$LAN" sysctl -qw net.ipv4.ip_forward=1
nsx "$LAN" ip link add br-vpc type bridge
nsx "$LAN" ip addr add 10.240.0.1/24 dev br-vpc
nsx "$LAN" ip link set br-vpc up
ip link add eth0 netns "$EXT" type veth peer name to-ext netns "$LAN"
nsx "$LAN" ip addr add 173.38.220.1/24 dev to-ext
nsx "$LAN" ip link set to-ext up
nsx "$EXT" ip addr add 173.38.220.54/24 dev eth0
nsx "$EXT" ip link set eth0 up
nsx "$EXT" ip route add default via 173.38.220.1

node() { # ns ip mac podCIDRgateway otherPodCIDR otherNodeIP
	local ns=$1 ip=$2 mac=$3 gw=$4 other=$5 otherip=$6
	ip link add eth0 netns "$ns" index 2 address "$mac" type veth peer name "port-${ip##*.}" netns "$LAN"
	nsx "$LAN" ip link set "port-${ip##*.}" master br-vpc up
	nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
	nsx "$ns" ip addr add "$ip/24" dev eth0
	nsx "$ns" ip link set eth0 up
	nsx "$ns" ip route add default via 10.240.0.1 dev eth0
	nsx "$ns" ip route add "$other" via "$otherip" dev eth0
	nsx "$ns" ip link add cnio0 index 3 type bridge
	nsx "$ns" ip addr add "$gw/24" dev cnio0
	nsx "$ns" ip link set cnio0 up
	nsx "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1
}
node "$W0" 10.240.0.20 42:01:0a:f0:00:14 10.200.0.1 10.200.1.0/24 10.240.0.21
node "$W1" 10.240.0.21 42:01:0a:f0:00:15 10.200.1.1 10.200.0.0/24 10.240.0.20

pod() { # nodeNS podNS hostVeth index podIP gateway podMAC
	ip link add "$3" netns "$1" index "$4" type veth peer name eth0 netns "$2" index 3 address "$7"
	nsx "$1" ip link set "$3" master cnio0 up
	nsx "$2" ip addr add "$5/24" dev eth0
	nsx "$2" ip link set eth0 up
	nsx "$2" ip route add default via "$6" dev eth0
}
pod "$W0" "$DNS" veth2a9f3c1e 5 10.200.0.27 10.200.0.1 0a:58:0a:c8:00:1b
pod "$W0" "$BB" veth71f7d238 7 10.200.0.21 10.200.0.1 0a:58:0a:c8:00:15
pod "$W1" "$BB1" vethc5e21a97 5 10.200.1.15 10.200.1.1 0a:58:0a:c8:01:0f
pod "$W1" "$NGX" veth8b3d41f0 6 10.200.1.18 10.200.1.1 0a:58:0a:c8:01:12

for n in 0 1; do
	ns=$W0; [ "$n" = 1 ] && ns=$W1
	rules=$EX/nodes/worker-$n/iptables-save
	[ -n "${RULES:-}" ] && rules=$RULES/worker-$n.rules
	nsx "$ns" iptables-legacy-restore <"$rules"
	nsx "$ns" iptables-legacy-save >"$OUT/worker-$n/iptables-save.txt"
done

nsx "$NGX" python3 -c 'import http.server as h, socketserver as s, sys; s.TCPServer.allow_reuse_address = True; s.TCPServer((sys.argv[1], int(sys.argv[2])), h.SimpleHTTPRequestHandler).serve_forever()' 10.200.1.18 80 >/dev/null 2>&1 &
ready=""
for _ in $(seq 300); do nsx "$W1" bash -c '</dev/tcp/10.200.1.18/80' 2>/dev/null && { ready=1; break; }; sleep 0.1; done
[ -n "$ready" ] || { echo "backends never listened" >&2; exit 1; }

: >"$OUT/requests.txt"
echo "icmp busybox -> 10.200.1.15: $(nsx "$BB" python3 -c '
import os, socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident = os.getpid() & 0xffff
pkt = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"svcpath-lab"
pkt = pkt[:2] + struct.pack("!H", csum(pkt + b"\0")) + pkt[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(3)
s.sendto(pkt, ("10.200.1.15", 0))
while True:
    data, addr = s.recvfrom(2048)
    if data[20] == 0: print("echo reply from", addr[0]); break
' 2>&1 || echo FAILED)" >>"$OUT/requests.txt"
echo "http outside -> 10.240.0.20:31088: $(nsx "$EXT" curl -s -o /dev/null -w '%{http_code} %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port}' --max-time 3 http://10.240.0.20:31088/ || echo FAILED)" >>"$OUT/requests.txt"

sleep 3
for n in 0 1; do
	ns=$W0; [ "$n" = 1 ] && ns=$W1
	d=$OUT/worker-$n
	nsx "$ns" conntrack -L >"$d/conntrack.txt" 2>"$d/conntrack.stderr"
	nsx "$ns" ip -j route show table all >"$d/ip-route.json"
	nsx "$ns" ip -j rule >"$d/ip-rule.json"
	nsx "$ns" ip -j -d link >"$d/ip-link.json"
	nsx "$ns" ip -j addr >"$d/ip-addr.json"
	nsx "$ns" ip route >"$d/ip-route.txt"
done
nsx "$BB" ip route >"$OUT/worker-0/busybox-route.txt"
nsx "$BB" ip link show eth0 >"$OUT/worker-0/busybox-link.txt"
echo "lab output in $OUT"
