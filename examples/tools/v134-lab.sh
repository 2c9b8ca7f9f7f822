#!/usr/bin/env bash
# v134-lab.sh OUTDIR
#
# Rebuilds node1 of the kube-proxy v1.34 samples in network namespaces of its
# own (eth0 is a veth pair whose two ends stay in the node namespace, as in
# the real lab; bridge kl-br0 10.244.1.1/24; pods web-a 10.244.1.10, web-b
# 10.244.1.11, client 10.244.1.20 on veths veth-kl1..3), loads
# examples/kube-proxy-v1.34/nodes/node1/iptables-save with iptables-nft-restore
# (after creating the nfacct counters kube-proxy creates), sends the samples'
# two requests (client -> web, web-a -> web until it lands on itself) and
# captures ip -j route/rule/link/addr, conntrack -L and iptables-save.
# RULES=FILE loads FILE instead. Deletes its namespaces on exit.
set -euo pipefail
OUT=${1:?usage: v134-lab.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
RULES=${RULES:-$HERE/../kube-proxy-v1.34/nodes/node1/iptables-save}
ID=svcpath-ex-$RANDOM$RANDOM
NODE=$ID-node1 A=$ID-pod-a B=$ID-pod-b C=$ID-client
ALL=("$NODE" "$A" "$B" "$C")
cleanup() {
	# Everything this script started runs inside its own namespaces.
	for ns in "${ALL[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap cleanup EXIT
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mkdir -p "$OUT/node1"
for ns in "${ALL[@]}"; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done

nsx "$NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
nsx "$NODE" ip link add eth0 index 2 address 52:54:00:6b:1c:0a type veth peer name eth0-end index 3 address 52:54:00:6b:1c:0b
nsx "$NODE" ip addr add 10.200.0.10/24 dev eth0
nsx "$NODE" ip link set eth0 up
nsx "$NODE" ip link set eth0-end up
nsx "$NODE" ip route add default dev eth0 scope link
nsx "$NODE" ip link add kl-br0 index 4 type bridge
nsx "$NODE" ip addr add 10.244.1.1/24 dev kl-br0
nsx "$NODE" ip link set kl-br0 up
pod() { # podNS hostIf index hostMAC podIP podMAC
	ip link add "$2" netns "$NODE" index "$3" address "$4" type veth peer name eth0 netns "$1" index 2 address "$6"
	nsx "$NODE" ip link set "$2" master kl-br0 up
	# hairpin: a pod reaching itself through its service (the bridge CNI
	# plugin's "hairpinMode": true, or kubelet --hairpin-mode=hairpin-veth)
	nsx "$NODE" ip link set "$2" type bridge_slave hairpin on
	nsx "$1" ip addr add "$5/24" dev eth0
	nsx "$1" ip link set eth0 up
	nsx "$1" ip route add default via 10.244.1.1 dev eth0
}
pod "$A" veth-kl1 5 3a:76:3c:f2:45:66 10.244.1.10 aa:77:eb:39:fb:41
pod "$B" veth-kl2 6 be:0f:91:5a:23:d8 10.244.1.11 2e:41:c7:08:9b:73
pod "$C" veth-kl3 7 f2:6c:a4:1e:70:95 10.244.1.20 86:d3:12:bb:5e:04
nsx "$NODE" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || echo "note: no per-netns bridge-nf-call-iptables" >&2

nsx "$NODE" nfacct add ct_state_invalid_dropped_pkts
nsx "$NODE" nfacct add localhost_nps_accepted_pkts
nsx "$NODE" iptables-nft-restore <"$RULES"
nsx "$NODE" iptables-nft-save >"$OUT/node1/iptables-save.txt"

for p in "$A:10.244.1.10" "$B:10.244.1.11"; do
	nsx "${p%%:*}" python3 -c 'import http.server as h, socketserver as s, sys; s.TCPServer.allow_reuse_address = True; s.TCPServer((sys.argv[1], int(sys.argv[2])), h.SimpleHTTPRequestHandler).serve_forever()' "${p#*:}" 8080 >/dev/null 2>&1 &
done
ready=""
for _ in $(seq 300); do
	nsx "$C" bash -c '</dev/tcp/10.244.1.10/8080' 2>/dev/null && nsx "$C" bash -c '</dev/tcp/10.244.1.11/8080' 2>/dev/null && { ready=1; break; }
	sleep 0.1
done
[ -n "$ready" ] || { echo "backends never listened" >&2; exit 1; }
: >"$OUT/requests.txt"
get() {
	echo "$2: $(nsx "$1" curl -s -o /dev/null -w '%{http_code} %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port}' --max-time 3 http://10.96.0.100:80/ || echo FAILED)" >>"$OUT/requests.txt"
}
for i in 1 2 3; do get "$C" "client #$i"; done
for i in 1 2 3 4 5 6; do get "$A" "web-a #$i"; done
sleep 3
d=$OUT/node1
nsx "$NODE" conntrack -L >"$d/conntrack.txt" 2>"$d/conntrack.stderr"
nsx "$NODE" ip -j route show table all >"$d/ip-route.json"
nsx "$NODE" ip -j rule >"$d/ip-rule.json"
nsx "$NODE" ip -j -d link >"$d/ip-link.json"
nsx "$NODE" ip -j addr >"$d/ip-addr.json"
nsx "$NODE" ip route >"$d/ip-route.txt"
nsx "$A" ip route >"$d/pod-a-route.txt"
nsx "$A" ip link show eth0 >"$d/pod-a-link.txt"
nsx "$NODE" ip link show veth-kl1 >>"$d/pod-a-link.txt"
[ -n "${HOLD:-}" ] && { echo "holding: $ID"; sleep "$HOLD"; }
echo "lab output in $OUT"
