package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"net"
	"strings"
)

// Names of kube-proxy's nftables proxier (kubernetes/kubernetes
// pkg/proxy/nftables/proxier.go). All its objects live in one table,
// "kube-proxy", of family ip or ip6.
const (
	NFTTable = "kube-proxy"

	// Per service-port and per endpoint chain (and set) name prefixes.
	NFTPrefixService  = "service-"  // cluster-policy service chain
	NFTPrefixLocal    = "local-"    // local-policy service chain
	NFTPrefixExternal = "external-" // external-traffic chain
	NFTPrefixFirewall = "firewall-" // loadBalancerSourceRanges chain
	NFTPrefixEndpoint = "endpoint-" // endpoint (DNAT) chain
	NFTPrefixAffinity = "affinity-" // session-affinity set of an endpoint

	// nftChainNameMax is knftables.NameLengthMax; nftChainPrefixMax is
	// kube-proxy's chainNamePrefixLengthMax (prefix including its hyphen).
	nftChainNameMax   = 256
	nftChainPrefixMax = 16
	nftChainBaseMax   = nftChainNameMax - nftChainPrefixMax
)

// NFTHashAndTruncate is kube-proxy's hashAndTruncate: the name prefixed
// with the first 8 characters of the base32 encoding of its sha256 and a
// hyphen, truncated to 240 characters (ending in "...") if longer.
func NFTHashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if len(name) > nftChainBaseMax {
		name = name[:nftChainBaseMax-3] + "..."
	}
	return name
}

// NFTServicePortChainBase is kube-proxy's servicePortChainNameBase:
// "HASH-namespace/name/protocol/portName" (protocol lower case, portName
// empty for an unnamed port).
func NFTServicePortChainBase(namespace, name, protocol, portName string) string {
	return NFTHashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName)
}

// NFTEndpointChainBase is kube-proxy's servicePortEndpointChainNameBase:
// "HASH-namespace/name/protocol/portName__ip/port", for an endpoint given as
// "ip:port" ("[ip]:port" for IPv6, whose colons become dots).
func NFTEndpointChainBase(namespace, name, protocol, portName, endpoint string) string {
	ip, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		ip, port = endpoint, ""
	}
	ip = strings.ReplaceAll(ip, ":", ".")
	return NFTHashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName + "__" + ip + "/" + port)
}

// NFTChainNames are the per service-port chain names of the nftables proxier.
type NFTChainNames struct {
	Service, Local, External, Firewall string
}

// NFTServiceChains derives the service-port chains.
func NFTServiceChains(namespace, name, protocol, portName string) NFTChainNames {
	base := NFTServicePortChainBase(namespace, name, protocol, portName)
	return NFTChainNames{
		Service:  NFTPrefixService + base,
		Local:    NFTPrefixLocal + base,
		External: NFTPrefixExternal + base,
		Firewall: NFTPrefixFirewall + base,
	}
}

// NFTEndpointChain derives an endpoint's chain and its session-affinity set.
func NFTEndpointChain(namespace, name, protocol, portName, endpoint string) (chain, affinitySet string) {
	base := NFTEndpointChainBase(namespace, name, protocol, portName, endpoint)
	return NFTPrefixEndpoint + base, NFTPrefixAffinity + base
}
