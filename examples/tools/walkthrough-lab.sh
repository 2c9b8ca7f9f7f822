#!/usr/bin/env bash
# walkthrough-lab.sh OUTDIR
#
# Rebuilds the cluster of docs' datapath walkthrough (sections 2 and 3) in
# network namespaces of its own, loads examples/walkthrough's iptables-save
# and ipset files into the two node namespaces, sends the page's four kinds
# of request (a: client pod, b: worker-2 itself, c1/c2: nginx1 to its own
# service), and writes to OUTDIR what the real tools print there:
#   OUTDIR/<node>/{ip-route,ip-rule,ip-link,ip-addr}.json   ip -j ...
#   OUTDIR/<node>/conntrack.txt                              conntrack -L
#   OUTDIR/<node>/iptables-save.txt ipset.txt sysctl.txt     after loading
#   OUTDIR/<node>/route-get.txt                              ip route get <pod>
#   OUTDIR/requests.txt                                      what each request got
#
# Needs root. Touches nothing outside the namespaces it creates (named
# svcpath-ex-<random>-*), and deletes them on exit. The kernel here has no
# ipip: tunl0 is a VXLAN device (static neighbour + FDB entries) that routes
# exactly like Calico's tunl0; examples/tools/finish-walkthrough.py rewrites
# its ip-link/ip-addr entries to the ipip shape. RULES=DIR loads
# DIR/worker-{1,2}.rules instead of the example's iptables-save files.
set -euo pipefail

OUT=${1:?usage: walkthrough-lab.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
EX=$HERE/../walkthrough
ID=svcpath-ex-$RANDOM$RANDOM
W1=$ID-w1 W2=$ID-w2 CLIENT=$ID-client NGINX1=$ID-nginx1 NGINX2=$ID-nginx2 COREDNS=$ID-coredns
ALL=("$W1" "$W2" "$CLIENT" "$NGINX1" "$NGINX2" "$COREDNS")

cleanup() {
	# Everything this script started runs inside its own namespaces.
	for ns in "${ALL[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

mkdir -p "$OUT/worker-1" "$OUT/worker-2"
for ns in "${ALL[@]}"; do
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
done

# Nodes: em1 (the NIC, here one veth whose ends are the two nodes' em1),
# then tunl0, so that the hairpin source address is em1's (kernel source
# selection walks the devices in creation order, as on the real nodes).
ip link add em1 netns "$W2" index 2 address 0c:c4:7a:3e:15:72 type veth \
	peer name em1 netns "$W1" index 2 address 0c:c4:7a:3e:15:6e
node() { # ns nodeIP tunnelIP tunnelMAC peerIP peerTunnelMAC
	local ns=$1 ip=$2 tun=$3 mac=$4 peer=$5 peermac=$6
	nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
	nsx "$ns" ip addr add "$ip/24" dev em1
	nsx "$ns" ip link set em1 up
	nsx "$ns" ip link add tunl0 index 5 address "$mac" type vxlan id 4096 local "$ip" dev em1 dstport 4789 nolearning
	nsx "$ns" sysctl -qw net.ipv6.conf.tunl0.disable_ipv6=1
	nsx "$ns" ip link set tunl0 mtu 1440 up
	nsx "$ns" ip addr add "$tun/32" dev tunl0
	nsx "$ns" bridge fdb append 00:00:00:00:00:00 dev tunl0 dst "$peer"
	nsx "$ns" ip neigh replace "$peer" lladdr "$peermac" dev tunl0 nud permanent
	nsx "$ns" bridge fdb append "$peermac" dev tunl0 dst "$peer"
	nsx "$ns" ip route add default via 192.168.2.254 dev em1
}
node "$W2" 192.168.2.3 10.1.236.128 66:2a:9c:33:f1:07 192.168.2.2 66:b1:55:8e:02:c4
node "$W1" 192.168.2.2 10.1.139.64 66:b1:55:8e:02:c4 192.168.2.3 66:2a:9c:33:f1:07
nsx "$W2" ip route add 10.1.139.64/26 via 192.168.2.2 dev tunl0 proto bird onlink
nsx "$W2" ip route add blackhole 10.1.236.128/26 proto bird
nsx "$W1" ip route add 10.1.236.128/26 via 192.168.2.3 dev tunl0 proto bird onlink
nsx "$W1" ip route add blackhole 10.1.139.64/26 proto bird

# Pods: a veth whose host end is cali<11 hex> (MAC ee:ee:ee:ee:ee:ee, proxy
# ARP, a /32 route), the pod end eth0 with a /32 and Calico's 169.254.1.1
# gateway, as the Calico CNI plugin sets them up.
pod() { # nodeNS podNS hostIf hostIndex podIP podMAC
	local node=$1 ns=$2 hif=$3 idx=$4 ip=$5 mac=$6
	ip link add "$hif" netns "$node" index "$idx" address ee:ee:ee:ee:ee:ee type veth \
		peer name eth0 netns "$ns" index 4 address "$mac"
	nsx "$node" sysctl -qw "net.ipv4.conf.$hif.proxy_arp=1" "net.ipv4.neigh.$hif.proxy_delay=0"
	nsx "$node" ip link set "$hif" up
	nsx "$node" ip route add "$ip" dev "$hif" scope link
	nsx "$ns" ip addr add "$ip/32" dev eth0
	nsx "$ns" ip link set eth0 up
	nsx "$ns" ip route add 169.254.1.1 dev eth0 scope link
	nsx "$ns" ip route add default via 169.254.1.1 dev eth0
}
pod "$W1" "$COREDNS" cali8a81c6e0a31 7 10.1.139.70 7a:0e:3b:51:c2:9d
pod "$W1" "$NGINX1" calif67c1668c34 11 10.1.139.84 b2:6d:1e:47:90:3a
pod "$W1" "$NGINX2" calic7bfae5c264 12 10.1.139.93 5e:c1:a8:02:7d:66
pod "$W2" "$CLIENT" calie8f03783e20 9 10.1.236.141 d6:83:40:9f:1b:25

# Rules: ipsets first (the nat and filter tables match Calico's sets).
for n in 1 2; do
	ns=$W1; [ "$n" = 2 ] && ns=$W2
	nsx "$ns" ipset restore <"$EX/nodes/worker-$n/ipset"
	rules=$EX/nodes/worker-$n/iptables-save
	[ -n "${RULES:-}" ] && rules=$RULES/worker-$n.rules
	nsx "$ns" iptables-legacy-restore <"$rules"
	nsx "$ns" iptables-legacy-save >"$OUT/worker-$n/iptables-save.txt"
	nsx "$ns" ipset save >"$OUT/worker-$n/ipset.txt"
done

# Backends: an HTTP server on port 80 in each nginx pod (a plain TCPServer:
# http.server's HTTPServer does a reverse DNS lookup before it listens).
for p in "$NGINX1:10.1.139.84" "$NGINX2:10.1.139.93"; do
	nsx "${p%%:*}" python3 -c 'import http.server as h, socketserver as s, sys; s.TCPServer.allow_reuse_address = True; s.TCPServer((sys.argv[1], int(sys.argv[2])), h.SimpleHTTPRequestHandler).serve_forever()' "${p#*:}" 80 >/dev/null 2>&1 &
done
ready=""
for _ in $(seq 300); do
	nsx "$NGINX1" bash -c '</dev/tcp/10.1.139.84/80' 2>/dev/null &&
		nsx "$NGINX2" bash -c '</dev/tcp/10.1.139.93/80' 2>/dev/null && { ready=1; break; }
	sleep 0.1
done
[ -n "$ready" ] || { echo "backends never listened" >&2; exit 1; }

get() { # ns label
	local code
	code=$(nsx "$1" curl -s -o /dev/null -w '%{http_code} %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port}' \
		--max-time 3 http://10.99.64.233:9999/ || echo "FAILED")
	echo "$2: $code" >>"$OUT/requests.txt"
}
: >"$OUT/requests.txt"
for i in 1 2 3 4; do get "$CLIENT" "a (client pod on worker-2) #$i"; done
for i in 1 2 3 4; do get "$W2" "b (worker-2 itself) #$i"; done
for i in 1 2 3 4 5 6; do get "$NGINX1" "c (nginx1 on worker-1) #$i"; done

sleep 3 # IPv6 link-local addresses leave the tentative state
for n in 1 2; do
	ns=$W1; [ "$n" = 2 ] && ns=$W2
	d=$OUT/worker-$n
	nsx "$ns" conntrack -L >"$d/conntrack.txt" 2>"$d/conntrack.stderr"
	nsx "$ns" ip -j route show table all >"$d/ip-route.json"
	nsx "$ns" ip -j rule >"$d/ip-rule.json"
	nsx "$ns" ip -j -d link >"$d/ip-link.json"
	nsx "$ns" ip -j addr >"$d/ip-addr.json"
	nsx "$ns" sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter net.ipv4.conf.all.route_localnet \
		net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_tcp_be_liberal >"$d/sysctl.txt" 2>&1 || true
done
nsx "$W2" ip route get 10.1.139.84 >"$OUT/worker-2/route-get.txt"
nsx "$W2" ip route get 10.99.64.233 >>"$OUT/worker-2/route-get.txt"
nsx "$W1" ip route get 10.1.139.84 >"$OUT/worker-1/route-get.txt"
nsx "$W1" ip route get 10.1.139.93 >>"$OUT/worker-1/route-get.txt"
[ -n "${HOLD:-}" ] && { echo "holding: $ID"; sleep "$HOLD"; }
echo "lab output in $OUT"
