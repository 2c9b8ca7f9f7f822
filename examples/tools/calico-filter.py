#!/usr/bin/env python3
"""Writes the filter table of a walkthrough node (kube-proxy v1.10-era chains
plus Calico 3.x chains) in iptables-restore form on stdout.

usage: calico-filter.py IFACE:NAMESPACE [IFACE:NAMESPACE ...]

The rules and the "cali:" hashes of Calico's fixed chains (cali-INPUT,
cali-OUTPUT, cali-FORWARD, cali-failsafe-*, cali-wl-to-host, the profile
chain of namespace default) are copied from real Calico 3.x nodes; those
hashes only depend on the chain name and its rules. The hashes of the
per-workload chains (cali-fw-*, cali-tw-*, the dispatch chains), of the
kube-system profile and of shortened chain names depend on names real Felix never saw here: they are
made by pseudo_hash below, in Felix's format (16 characters of URL-safe
base64), not by Felix's algorithm.
"""
import base64
import hashlib
import sys


def pseudo_hash(chain, rule):
    d = hashlib.sha224((chain + "\x00" + rule).encode()).digest()
    return base64.urlsafe_b64encode(d).decode()[:16]


out = []
chains = set()


def chain_name(prefix, name):
    """Felix's chain names are at most 28 characters: a longer profile name
    is replaced by "_" and a hash (e.g. cali-pri-_6syrmAMTuGHlzH1yqi)."""
    if len(prefix + name) <= 28:
        return prefix + name
    return prefix + "_" + pseudo_hash(prefix, name)[: 28 - len(prefix) - 1]


def rule(chain, body, h=None):
    """Appends -A chain with Calico's hash comment first, as Felix writes it.
    body is the rule after the comment; a leading '-i X', '-o X' or '-p X'
    goes before the comment, as iptables-save prints it."""
    chains.add(chain)
    pre = ""
    for opt in ("-i ", "-o ", "-p "):
        if body.startswith(opt):
            parts = body.split(" ", 2)
            pre = parts[0] + " " + parts[1] + " "
            body = parts[2]
    h = h or pseudo_hash(chain, pre + body)
    out.append(f'-A {chain} {pre}-m comment --comment "cali:{h}" {body}')


def kube(line):
    out.append(line)


workloads = [a.split(":", 1) for a in sys.argv[1:]]

# Builtin chain jumps: Felix inserts its jumps first, kube-proxy (v1.10) and
# kubelet (KUBE-FIREWALL) follow.
kube('-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT')
kube('-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
kube('-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
kube('-A INPUT -j KUBE-FIREWALL')
kube('-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD')
kube('-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
kube('-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" -j cali-OUTPUT')
kube('-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
kube('-A OUTPUT -j KUBE-FIREWALL')
kube('-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP')
kube('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT')
kube('-A KUBE-FORWARD -s 10.1.0.0/16 -m comment --comment "kubernetes forwarding conntrack pod source rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
kube('-A KUBE-FORWARD -d 10.1.0.0/16 -m comment --comment "kubernetes forwarding conntrack pod destination rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')

# Calico's fixed chains (real hashes).
rule("cali-FORWARD", "-j MARK --set-xmark 0x0/0xe0000", "vjrMJCRpqwy5oRoX")
rule("cali-FORWARD", "-m mark --mark 0x0/0x10000 -j cali-from-hep-forward", "A_sPAO0mcxbT9mOV")
rule("cali-FORWARD", "-i cali+ -j cali-from-wl-dispatch", "8ZoYfO5HKXWbB3pk")
rule("cali-FORWARD", "-o cali+ -j cali-to-wl-dispatch", "jdEuaPBe14V2hutn")
rule("cali-FORWARD", "-j cali-to-hep-forward", "12bc6HljsMKsmfr-")
rule("cali-FORWARD", '-m comment --comment "Policy explicitly accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT', "MH9kMp5aNICL-Olv")
rule("cali-INPUT", '-p ipencap -m comment --comment "Allow IPIP packets from Calico hosts" -m set --match-set cali40all-hosts-net src -m addrtype --dst-type LOCAL -j ACCEPT', "PajejrV4aFdkZojI")
rule("cali-INPUT", '-p ipencap -m comment --comment "Drop IPIP packets from non-Calico hosts" -j DROP', "_wjq-Yrma8Ly1Svo")
rule("cali-INPUT", "-i cali+ -g cali-wl-to-host", "8TZGxLWh_Eiz66wc")
rule("cali-INPUT", "-m mark --mark 0x10000/0x10000 -j ACCEPT", "6McIeIDvPdL6PE1T")
rule("cali-INPUT", "-j MARK --set-xmark 0x0/0xf0000", "YGPbrUms7NId8xVa")
rule("cali-INPUT", "-j cali-from-host-endpoint", "2gmY7Bg2i0i84Wk_")
rule("cali-INPUT", '-m comment --comment "Host endpoint policy accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT', "q-Vz2ZT9iGE331LL")
rule("cali-OUTPUT", "-m mark --mark 0x10000/0x10000 -j ACCEPT", "Mq1_rAdXXH3YkrzW")
rule("cali-OUTPUT", "-o cali+ -j RETURN", "69FkRTJDvD5Vu6Vl")
rule("cali-OUTPUT", '-p ipencap -m comment --comment "Allow IPIP packets to other Calico hosts" -m set --match-set cali40all-hosts-net dst -m addrtype --src-type LOCAL -j ACCEPT', "AnEsmO6bDZbQntWW")
rule("cali-OUTPUT", "-j MARK --set-xmark 0x0/0xf0000", "9e9Uf3GU5tX--Lxy")
rule("cali-OUTPUT", "-j cali-to-host-endpoint", "OB2pzPrvQn6PC89t")
rule("cali-OUTPUT", '-m comment --comment "Host endpoint policy accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT', "tvSSMDBWrme3CUqM")
for proto, port, h in [("tcp", 22, "wWFQM43tJU7wwnFZ"), ("udp", 68, "LwNV--R8MjeUYacw"), ("tcp", 179, "QOO5NUOqOSS1_Iw0"),
                       ("tcp", 2379, "cwZWoBSwVeIAZmVN"), ("tcp", 2380, "7FbNXT91kugE_upR"), ("tcp", 6666, "ywE9WYUBEpve70WT"),
                       ("tcp", 6667, "l-WQSVBf_lygPR0J")]:
    rule("cali-failsafe-in", f"-p {proto} -m multiport --dports {port} -j ACCEPT", h)
for proto, port, h in [("udp", 53, "82hjfji-wChFhAqL"), ("udp", 67, "TNM3RfEjbNr72hgH"), ("tcp", 179, "ycxKitIl4u3dK0HR"),
                       ("tcp", 2379, "hxjEWyxdkXXkdvut"), ("tcp", 2380, "cA_GLtruuvG88KiO"), ("tcp", 6666, "Sb1hkLYFMrKS6r01"),
                       ("tcp", 6667, "UwLSebGONJUG4yG-")]:
    rule("cali-failsafe-out", f"-p {proto} -m multiport --dports {port} -j ACCEPT", h)
rule("cali-wl-to-host", "-j cali-from-wl-dispatch", "Ee9Sbo10IpVujdIY")
rule("cali-wl-to-host", '-m comment --comment "Configured DefaultEndpointToHostAction" -j ACCEPT', "nSZbcOoG1xPONxb8")
for c in ("cali-from-hep-forward", "cali-from-host-endpoint", "cali-to-hep-forward", "cali-to-host-endpoint"):
    chains.add(c)

# Profiles of the namespaces (and service accounts) of the workloads.
known_profile_hashes = {
    "cali-pro-kns.default": ("oLzzje5WExbgfib5", "4goskqvxh5xcGw3s"),
    "cali-pri-kns.default": ("7Fnh7Pv3_98FtLW7", "ZbV6bJXWSRefjK0u"),
}
for ns in sorted({ns for _, ns in workloads}):
    for d in ("pro", "pri"):
        c = f"cali-{d}-kns.{ns}"
        h1, h2 = known_profile_hashes.get(c, (None, None))
        rule(c, "-j MARK --set-xmark 0x10000/0x10000", h1)
        rule(c, "-m mark --mark 0x10000/0x10000 -j RETURN", h2)
        chains.add(chain_name(f"cali-{d}-", f"ksa.{ns}.default"))

# Per-workload chains.
for iface, ns in workloads:
    rule("cali-from-wl-dispatch", f"-i {iface} -g cali-fw-{iface}")
    rule("cali-to-wl-dispatch", f"-o {iface} -g cali-tw-{iface}")
rule("cali-from-wl-dispatch", '-m comment --comment "Unknown interface" -j DROP')
rule("cali-to-wl-dispatch", '-m comment --comment "Unknown interface" -j DROP')
for iface, ns in workloads:
    fw, tw = f"cali-fw-{iface}", f"cali-tw-{iface}"
    rule(fw, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    rule(fw, "-m conntrack --ctstate INVALID -j DROP")
    rule(fw, "-j MARK --set-xmark 0x0/0x10000")
    rule(fw, '-p udp -m comment --comment "Drop VXLAN encapped packets originating in pods" -m multiport --dports 4789 -j DROP')
    rule(fw, '-p ipencap -m comment --comment "Drop IPinIP encapped packets originating in pods" -j DROP')
    rule(fw, f"-j cali-pro-kns.{ns}")
    rule(fw, '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN')
    rule(fw, "-j " + chain_name("cali-pro-", f"ksa.{ns}.default"))
    rule(fw, '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN')
    rule(fw, '-m comment --comment "Drop if no profiles matched" -j DROP')
    rule(tw, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    rule(tw, "-m conntrack --ctstate INVALID -j DROP")
    rule(tw, "-j MARK --set-xmark 0x0/0x10000")
    rule(tw, f"-j cali-pri-kns.{ns}")
    rule(tw, '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN')
    rule(tw, "-j " + chain_name("cali-pri-", f"ksa.{ns}.default"))
    rule(tw, '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 -j RETURN')
    rule(tw, '-m comment --comment "Drop if no profiles matched" -j DROP')

user = sorted(chains | {"KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES"})
print("*filter")
print(":INPUT ACCEPT [0:0]")
print(":FORWARD ACCEPT [0:0]")
print(":OUTPUT ACCEPT [0:0]")
for c in user:
    print(f":{c} - [0:0]")
for l in out:
    print(l)
print("COMMIT")
