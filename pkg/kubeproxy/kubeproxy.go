// Package kubeproxy knows kube-proxy's conventions: how it names its chains,
// which marks it uses, and how its iptables proxier lays out the rules. The
// analyzer uses these to name what it expected and did not find; it never
// depends on them to find what is there (that is done by matching packets).
package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Chain name prefixes of kube-proxy's iptables proxier
// (kubernetes/kubernetes pkg/proxy/iptables/proxier.go).
const (
	ChainServices         = "KUBE-SERVICES"
	ChainExternalServices = "KUBE-EXTERNAL-SERVICES"
	ChainNodePorts        = "KUBE-NODEPORTS"
	ChainPostrouting      = "KUBE-POSTROUTING"
	ChainMarkMasq         = "KUBE-MARK-MASQ"
	ChainMarkDrop         = "KUBE-MARK-DROP"
	ChainForward          = "KUBE-FORWARD"
	ChainProxyFirewall    = "KUBE-PROXY-FIREWALL"
	ChainFirewall         = "KUBE-FIREWALL"
	ChainProxyCanary      = "KUBE-PROXY-CANARY"

	PrefixSVC = "KUBE-SVC-" // cluster-policy service chain
	PrefixSVL = "KUBE-SVL-" // local-policy service chain
	PrefixEXT = "KUBE-EXT-" // external-traffic chain
	PrefixFW  = "KUBE-FW-"  // load-balancer firewall chain
	PrefixSEP = "KUBE-SEP-" // endpoint chain
	PrefixXLB = "KUBE-XLB-" // external-local chain of older versions
)

// MasqueradeMark is kube-proxy's default masquerade mark bit
// (--iptables-masquerade-bit 14).
const MasqueradeMark uint32 = 0x4000

// hash16 is kube-proxy's portProtoHash: the first 16 characters of the
// base32 encoding of sha256(s).
func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// ServicePortNames returns the strings kube-proxy has used as a
// ServicePortName for hashing: "ns/name:port" for a named port; for an
// unnamed one current versions use "ns/name", older ones "ns/name:".
func ServicePortNames(namespace, name, portName string) []string {
	base := namespace + "/" + name
	if portName != "" {
		return []string{base + ":" + portName}
	}
	return []string{base, base + ":"}
}

// ChainNames are the per-service-port chain names kube-proxy derives.
type ChainNames struct {
	SVC, SVL, EXT, FW, XLB string
}

// ServiceChains derives the service-port chains from a service port name
// (one of ServicePortNames) and a protocol (TCP, UDP, SCTP, any case).
func ServiceChains(servicePortName, protocol string) ChainNames {
	h := hash16(servicePortName + strings.ToLower(protocol))
	return ChainNames{
		SVC: PrefixSVC + h,
		SVL: PrefixSVL + h,
		EXT: PrefixEXT + h,
		FW:  PrefixFW + h,
		XLB: PrefixXLB + h,
	}
}

// EndpointChain derives the KUBE-SEP chain of one endpoint ("ip:port", IPv6
// as "[ip]:port").
func EndpointChain(servicePortName, protocol, endpoint string) string {
	return PrefixSEP + hash16(servicePortName+strings.ToLower(protocol)+endpoint)
}
