package ipvsgen

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The ipsets of kube-proxy's IPVS proxier (pkg/proxy/ipvs/ipset.go and the
// ipsetInfo table of proxier.go), in ipsetInfo's order.
const (
	setLoopBack                      = "KUBE-LOOP-BACK"
	setClusterIP                     = "KUBE-CLUSTER-IP"
	setExternalIP                    = "KUBE-EXTERNAL-IP"
	setExternalIPLocal               = "KUBE-EXTERNAL-IP-LOCAL"
	setLoadBalancer                  = "KUBE-LOAD-BALANCER"
	setLoadBalancerFW                = "KUBE-LOAD-BALANCER-FW"
	setLoadBalancerLocal             = "KUBE-LOAD-BALANCER-LOCAL"
	setLoadBalancerSourceIP          = "KUBE-LOAD-BALANCER-SOURCE-IP"
	setLoadBalancerSourceCIDR        = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	setNodePortTCP                   = "KUBE-NODE-PORT-TCP"
	setNodePortLocalTCP              = "KUBE-NODE-PORT-LOCAL-TCP"
	setNodePortUDP                   = "KUBE-NODE-PORT-UDP"
	setNodePortLocalUDP              = "KUBE-NODE-PORT-LOCAL-UDP"
	setNodePortSCTP                  = "KUBE-NODE-PORT-SCTP-HASH"
	setNodePortLocalSCTP             = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	setHealthCheckNodePort           = "KUBE-HEALTH-CHECK-NODE-PORT"
	setIPVSIPs                       = "KUBE-IPVS-IPS"
	typeHashIP                       = "hash:ip"
	typeHashIPPort                   = "hash:ip,port"
	typeHashIPPortIP                 = "hash:ip,port,ip"
	typeHashIPPortNet                = "hash:ip,port,net"
	typeBitmapPort                   = "bitmap:port"
	defaultHashSize                  = 1024
	defaultMaxElem                   = 65536
	defaultBucketSize                = 12 // the kernel's AHASH_MAX_SIZE
	defaultPortRange                 = "0-65535"
	jhashInitval              uint32 = 0xdeadbeef
)

var ipsetInfo = []struct{ name, typ, comment string }{
	{setLoopBack, typeHashIPPortIP, "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
	{setClusterIP, typeHashIPPort, "Kubernetes service cluster ip + port for masquerade purpose"},
	{setExternalIP, typeHashIPPort, "Kubernetes service external ip + port for masquerade and filter purpose"},
	{setExternalIPLocal, typeHashIPPort, "Kubernetes service external ip + port with externalTrafficPolicy=local"},
	{setLoadBalancer, typeHashIPPort, "Kubernetes service lb portal"},
	{setLoadBalancerFW, typeHashIPPort, "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
	{setLoadBalancerLocal, typeHashIPPort, "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
	{setLoadBalancerSourceIP, typeHashIPPortIP, "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
	{setLoadBalancerSourceCIDR, typeHashIPPortNet, "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
	{setNodePortTCP, typeBitmapPort, "Kubernetes nodeport TCP port for masquerade purpose"},
	{setNodePortLocalTCP, typeBitmapPort, "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
	{setNodePortUDP, typeBitmapPort, "Kubernetes nodeport UDP port for masquerade purpose"},
	{setNodePortLocalUDP, typeBitmapPort, "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
	{setNodePortSCTP, typeHashIPPort, "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
	{setNodePortLocalSCTP, typeHashIPPort, "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
	{setHealthCheckNodePort, typeBitmapPort, "Kubernetes health check node port"},
	{setIPVSIPs, typeHashIP, "Addresses on the ipvs interface"},
}

// ipsetName is the name kube-proxy gives a set of the family: "KUBE-" is
// "KUBE-6-" for IPv6, cut to ipset's 31 characters.
func ipsetName(name string, v6 bool) string {
	if v6 && strings.HasPrefix(name, "KUBE-") {
		name = strings.Replace(name, "KUBE-", "KUBE-6-", 1)
		if len(name) > 31 {
			name = name[:31]
		}
	}
	return name
}

// ipsetEntry is one member, as kube-proxy's Entry holds it.
type ipsetEntry struct {
	ip, ip2 netip.Addr
	net     netip.Prefix
	proto   string
	port    int
}

var protoNumber = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}

// kubeString is kube-proxy's Entry.String(): what it passes to `ipset add`
// and sorts entries by.
func (e ipsetEntry) kubeString(typ string) string {
	switch typ {
	case typeHashIP:
		return e.ip.String()
	case typeHashIPPort:
		return fmt.Sprintf("%s,%s:%d", e.ip, e.proto, e.port)
	case typeHashIPPortIP:
		return fmt.Sprintf("%s,%s:%d,%s", e.ip, e.proto, e.port, e.ip2)
	case typeHashIPPortNet:
		return fmt.Sprintf("%s,%s:%d,%s", e.ip, e.proto, e.port, e.net)
	case typeBitmapPort:
		return strconv.Itoa(e.port)
	}
	return ""
}

// saveString is the member as `ipset save` prints it (a host network
// without its prefix length).
func (e ipsetEntry) saveString(typ string) string {
	if typ == typeHashIPPortNet && e.net.Bits() == e.net.Addr().BitLen() {
		return fmt.Sprintf("%s,%s:%d,%s", e.ip, e.proto, e.port, e.net.Addr())
	}
	return e.kubeString(typ)
}

// kernelKey is the element the kernel hashes (struct hash_*{4,6}_elem).
func (e ipsetEntry) kernelKey(typ string) []byte {
	var b []byte
	port := []byte{byte(e.port >> 8), byte(e.port)}
	switch typ {
	case typeHashIP:
		b = e.ip.AsSlice()
	case typeHashIPPort:
		b = append(append(e.ip.AsSlice(), port...), protoNumber[e.proto], 0)
	case typeHashIPPortIP:
		b = append(append(append(e.ip.AsSlice(), e.ip2.AsSlice()...), port...), protoNumber[e.proto], 0)
	case typeHashIPPortNet:
		// cidr - 1 in 7 bits, nomatch in the 8th.
		b = append(append(append(e.ip.AsSlice(), e.net.Masked().Addr().AsSlice()...), port...), byte(e.net.Bits()-1), protoNumber[e.proto])
	}
	return b
}

// ipset is one set with its members.
type ipset struct {
	name, typ, comment string
	v6                 bool
	entries            map[string]ipsetEntry // by kubeString
}

func (s *ipset) add(e ipsetEntry) {
	s.entries[e.kubeString(s.typ)] = e
}

func (s *ipset) empty() bool { return len(s.entries) == 0 }

// save writes the set as `ipset save` prints it: the create line, then the
// members in the kernel's order. kube-proxy adds the members one by one in
// the sorted order of their strings; a bitmap lists by port, a hash set by
// bucket (jhash2 of the element with the set's initval) and position, with
// the table doubled whenever a bucket would exceed 12 members.
func (s *ipset) save(b *strings.Builder, initval uint32) {
	if s.typ == typeBitmapPort {
		fmt.Fprintf(b, "create %s %s range %s\n", s.name, s.typ, defaultPortRange)
		ports := make([]int, 0, len(s.entries))
		for _, e := range s.entries {
			ports = append(ports, e.port)
		}
		sort.Ints(ports)
		for _, p := range ports {
			fmt.Fprintf(b, "add %s %d\n", s.name, p)
		}
		return
	}
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := newHashTable(initval, defaultHashSize)
	for _, k := range keys {
		e := s.entries[k]
		h.add(hashElem{key: e.kernelKey(s.typ), entry: e})
	}
	family := "inet"
	if s.v6 {
		family = "inet6"
	}
	fmt.Fprintf(b, "create %s %s family %s hashsize %d maxelem %d bucketsize %d initval 0x%08x\n",
		s.name, s.typ, family, len(h.buckets), defaultMaxElem, defaultBucketSize, initval)
	for _, bucket := range h.buckets {
		for _, el := range bucket {
			fmt.Fprintf(b, "add %s %s\n", s.name, el.entry.saveString(s.typ))
		}
	}
}

type hashElem struct {
	key   []byte
	entry ipsetEntry
}

// hashTable is the kernel's ip_set_hash_gen.h table.
type hashTable struct {
	initval uint32
	bits    uint
	buckets [][]hashElem
}

func newHashTable(initval uint32, hashsize int) *hashTable {
	// htable_bits: hashsize rounded up to a power of two.
	bits := uint(bits.Len32(uint32(hashsize - 1)))
	return &hashTable{initval: initval, bits: bits, buckets: make([][]hashElem, 1<<bits)}
}

func (h *hashTable) bucket(key []byte, bits uint) uint32 {
	words := make([]uint32, len(key)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	return jhash2(words, h.initval) & (1<<bits - 1)
}

func (h *hashTable) add(e hashElem) {
	for {
		i := h.bucket(e.key, h.bits)
		if len(h.buckets[i]) < defaultBucketSize {
			h.buckets[i] = append(h.buckets[i], e)
			return
		}
		h.resize()
	}
}

// resize doubles the table (again, while a bucket overflows), moving the
// members in bucket and position order, as mtype_resize does.
func (h *hashTable) resize() {
	bits := h.bits
retry:
	bits++
	next := make([][]hashElem, 1<<bits)
	for _, bucket := range h.buckets {
		for _, e := range bucket {
			i := h.bucket(e.key, bits)
			if len(next[i]) >= defaultBucketSize {
				goto retry
			}
			next[i] = append(next[i], e)
		}
	}
	h.bits, h.buckets = bits, next
}

// jhash2 is the kernel's jhash2 (Bob Jenkins' lookup3 hashword).
func jhash2(k []uint32, initval uint32) uint32 {
	rol := bits.RotateLeft32
	a := jhashInitval + uint32(len(k))<<2 + initval
	b, c := a, a
	for len(k) > 3 {
		a += k[0]
		b += k[1]
		c += k[2]
		a -= c
		a ^= rol(c, 4)
		c += b
		b -= a
		b ^= rol(a, 6)
		a += c
		c -= b
		c ^= rol(b, 8)
		b += a
		a -= c
		a ^= rol(c, 16)
		c += b
		b -= a
		b ^= rol(a, 19)
		a += c
		c -= b
		c ^= rol(b, 4)
		b += a
		k = k[3:]
	}
	switch len(k) {
	case 3:
		c += k[2]
		fallthrough
	case 2:
		b += k[1]
		fallthrough
	case 1:
		a += k[0]
		c ^= b
		c -= rol(b, 14)
		a ^= c
		a -= rol(c, 11)
		b ^= a
		b -= rol(a, 25)
		c ^= b
		c -= rol(b, 16)
		a ^= c
		a -= rol(c, 4)
		b ^= a
		b -= rol(a, 14)
		c ^= b
		c -= rol(b, 24)
	}
	return c
}

// commands are kube-proxy's ipset calls of one sync, as `ipset restore`
// input: each set created (with the given initval, which kube-proxy leaves
// to the kernel), then its members added in the order kube-proxy adds them
// (sorted entry strings).
func (s *ipset) commands(b *strings.Builder, initval uint32) {
	if s.typ == typeBitmapPort {
		fmt.Fprintf(b, "create %s %s range %s -exist\n", s.name, s.typ, defaultPortRange)
	} else {
		family := "inet"
		if s.v6 {
			family = "inet6"
		}
		fmt.Fprintf(b, "create %s %s family %s hashsize %d maxelem %d initval 0x%08x -exist\n",
			s.name, s.typ, family, defaultHashSize, defaultMaxElem, initval)
	}
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "add %s %s -exist\n", s.name, k)
	}
}
