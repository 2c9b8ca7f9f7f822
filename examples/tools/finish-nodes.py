#!/usr/bin/env python3
"""finish-nodes.py EXAMPLE LABDIR

Turns what a lab script captured in network namespaces (LABDIR/<node>/*.json,
iptables-save.txt, ipset.txt) into examples/EXAMPLE/nodes/<node>/ files:

- ip-link, ip-addr, ip-route, ip-rule: the captured `ip -j` output, written
  back compactly as ip prints it, with two rewrites the lab could not do for
  real: the node NIC (a veth in the lab) becomes a physical PCI NIC (no
  linkinfo/peer, qdisc mq, parentbus/parentdev), and Calico's tunl0 (a VXLAN
  device in the lab: this kernel has no ipip) becomes the ipip fallback
  tunnel as iproute2 prints it (link_type ipip, "link": null, info_data
  proto/remote/local any, ttl 0, nopmtudisc).
- iptables-save: the lab's iptables-save output with a fixed header date.
- ipset: the lab's ipset save output.
conntrack, sysctl and meta.json are not touched: they were written by hand
(the pages' conntrack lines in conntrack -L form; see examples/README.md).
"""
import json
import os
import re
import sys

EXAMPLE, LAB = sys.argv[1], sys.argv[2]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", EXAMPLE, "nodes")

# Per example: node -> (NIC name, PCI address, header date of iptables-save).
NODES = {
    "walkthrough": {
        "worker-1": ("em1", "0000:03:00.0", "Tue Mar 12 09:47:18 2019"),
        "worker-2": ("em1", "0000:03:00.0", "Tue Mar 12 09:46:52 2019"),
    },
    "cni-bridge": {
        "worker-0": ("eth0", "0000:00:04.0", "Mon May 20 16:20:41 2019"),
        "worker-1": ("eth0", "0000:00:04.0", "Mon May 20 16:21:07 2019"),
    },
    "kube-proxy-v1.34": {
        # eth0 is a veth on the real lab node too: kept as captured.
        "node1": ("eth0", None, "Sat Nov 21 04:34:34 2026"),
    },
}


def physical_nic(e, pci, detailed):
    """A veth entry rewritten as a physical NIC (igb-like, or virtio-net for
    a cloud VM when the PCI address is 0000:00:04.0)."""
    out = {}
    for k, v in e.items():
        if k in ("link_index", "link_netnsid", "linkinfo", "link"):
            continue
        if k == "qdisc":
            v = "mq"
        if k == "max_mtu":
            v = 9216 if pci != "0000:00:04.0" else 65535
        if k in ("num_tx_queues", "num_rx_queues"):
            v = 8 if pci != "0000:00:04.0" else 2
        if k == "tso_max_size":
            v = 65536
        if k == "tso_max_segs":
            v = 65535
        out[k] = v
    if detailed and pci:
        out["parentbus"] = "pci"
        out["parentdev"] = pci
    return out


def ipip_tunl0(e, detailed):
    out = {}
    for k, v in e.items():
        if k == "ifname":
            out["link"] = None
        if k in ("link_index", "link_netnsid"):
            continue
        if k == "flags":
            v = ["NOARP", "UP", "LOWER_UP"]
        if k == "link_type":
            v = "ipip"
        if k in ("address", "broadcast"):
            v = "0.0.0.0"
        if k == "max_mtu":
            v = 65515
        if k == "tso_max_size":
            v = 65536
        if k == "linkinfo":
            v = {"info_kind": "ipip", "info_data": {"proto": "any", "remote": "any", "local": "any", "ttl": 0, "pmtudisc": False}}
        out[k] = v
    return out


def rewrite_links(entries, nic, pci, detailed):
    res = []
    for e in entries:
        if pci and e["ifname"] == nic and (e.get("linkinfo", {}).get("info_kind") == "veth" or "link_netnsid" in e or "link_index" in e):
            e = physical_nic(e, pci, detailed)
        elif e["ifname"] == "tunl0":
            e = ipip_tunl0(e, detailed)
        res.append(e)
    return res


def renumber_netnsids(entries):
    """The lab's node namespace also sees the other node's namespace (the
    far end of the NIC veth), which takes an nsid: on a real node the pod
    namespaces are numbered from 0. Renumber them densely, in order."""
    ids = {}
    for e in entries:
        if "link_netnsid" in e:
            e["link_netnsid"] = ids.setdefault(e["link_netnsid"], len(ids))
    return entries


def dump(path, data):
    with open(path, "w") as f:
        f.write(json.dumps(data, separators=(",", ":")) + "\n")


for node, (nic, pci, date) in NODES[EXAMPLE].items():
    src, dst = os.path.join(LAB, node), os.path.join(ROOT, node)
    os.makedirs(dst, exist_ok=True)
    link = json.load(open(os.path.join(src, "ip-link.json")))
    addr = json.load(open(os.path.join(src, "ip-addr.json")))
    dump(os.path.join(dst, "ip-link"), renumber_netnsids(rewrite_links(link, nic, pci, True)))
    dump(os.path.join(dst, "ip-addr"), renumber_netnsids(rewrite_links(addr, nic, pci, False)))
    dump(os.path.join(dst, "ip-route"), json.load(open(os.path.join(src, "ip-route.json"))))
    dump(os.path.join(dst, "ip-rule"), json.load(open(os.path.join(src, "ip-rule.json"))))
    if date:
        text = open(os.path.join(src, "iptables-save.txt")).read()
        # The header names the binary as invoked (iptables-nft-save,
        # iptables-legacy-save): on the nodes it is iptables-save.
        text = re.sub(r"^# Generated by iptables(?:-nft|-legacy)?-save (v[\d.]+(?: \(\w+\))?) on .*$",
                      lambda m: "# Generated by iptables-save " + m.group(1) + " on " + date, text, flags=re.M)
        text = re.sub(r"^# Completed on .*$", "# Completed on " + date, text, flags=re.M)
        open(os.path.join(dst, "iptables-save"), "w").write(text)
    if os.path.exists(os.path.join(src, "ipset.txt")) and os.path.getsize(os.path.join(src, "ipset.txt")) > 0:
        open(os.path.join(dst, "ipset"), "w").write(open(os.path.join(src, "ipset.txt")).read())
    print("wrote", dst)
