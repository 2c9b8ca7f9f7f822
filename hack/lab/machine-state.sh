#!/usr/bin/env bash
# Prints what the e2e lab must leave as it found it, in a stable form that
# two runs can diff: the root network namespace's rules (iptables, ip6tables,
# nftables, without counters), links, addresses, routes and policy rules, the
# machine-wide sysctls kubelet rewrites, the network namespaces, mounts and
# processes of the lab's kind, and cgroups named after it. Read-only.
set -uo pipefail
LAB_NAME=${SVCPATH_LAB_NAME:-svcpath-lab}

section() { printf '\n## %s\n' "$*"; }

section iptables
iptables-save 2>&1 | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[-]/'
section ip6tables
ip6tables-save 2>&1 | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[-]/'
section nftables
nft list ruleset 2>&1 | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
section links
ip -o link show | sed -E 's/^[0-9]+: //; s/ qlen [0-9]+//'
section addresses
ip -o addr show | sed -E 's/^[0-9]+: //; s/valid_lft [^ ]+ preferred_lft [^ ]+//'
section routes
ip route show table all
ip -6 route show table all | grep -v 'expires'
section rules
ip rule show
ip -6 rule show
section sysctls
# The sysctls lab.sh saves and restores, plus two the lab must not touch in
# the root namespace.
eval "$(grep '^MACHINE_SYSCTLS=' "$(dirname "$0")/lab.sh")"
for s in "${MACHINE_SYSCTLS[@]}" net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
	echo "$s = $(sysctl -n "$s" 2>&1)"
done
section netns
ls /run/netns 2>/dev/null | grep -E "^($LAB_NAME|cni-)" || true
section mounts
findmnt -rn -o TARGET | grep -E "$LAB_NAME|/run/netns|/run/containerd|/var/lib/kubelet" || true
section paths
for p in /run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /opt/containerd /var/lib/containerd /etc/cni; do
	[ -e "$p" ] && echo "$p"
done
section cgroups
ls -d /sys/fs/cgroup/*/"$LAB_NAME" /sys/fs/cgroup/*/kubepods 2>/dev/null || true
section processes
ps -eo comm= | grep -E '^(etcd|kube-apiserver|kube-controller|kubelet|kube-proxy|containerd|containerd-shim)' | sort | uniq -c || true
