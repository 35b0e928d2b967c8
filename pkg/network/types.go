package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors. Callers match them with errors.Is.
var (
	// ErrPortInUse: a host-mode published port is taken on this node (by
	// another task or a process listening on it).
	ErrPortInUse = errors.New("network: published port in use")
	// ErrPoolExhausted: the node's subnet has no free address.
	ErrPoolExhausted = errors.New("network: no free address")
	// ErrInvalid: a configuration value is invalid.
	ErrInvalid = errors.New("network: invalid")
)

// Protocol is a transport protocol of a published port.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// ParseProtocol accepts "tcp", "udp" and "" (tcp).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "", "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return "", fmt.Errorf("%w: protocol %q: want tcp or udp", ErrInvalid, s)
}

// PortMapping publishes Published on the node to Target of a container.
type PortMapping struct {
	Protocol  Protocol
	Published uint16
	Target    uint16
}

func (p PortMapping) String() string {
	return fmt.Sprintf("%d:%d/%s", p.Published, p.Target, p.Protocol)
}

// IngressRule sends Published on every node to Target on one of Backends
// (container addresses anywhere in the cluster), round robin.
type IngressRule struct {
	Protocol  Protocol
	Published uint16
	Target    uint16
	Backends  []netip.Addr
}

// VIPRule balances connections to a service's virtual IP over Backends
// (any port, kept as is), round robin.
type VIPRule struct {
	VIP      netip.Addr
	Backends []netip.Addr
}

// Route reaches another node's container subnet through its address.
type Route struct {
	Subnet netip.Prefix
	Via    netip.Addr
}

// Endpoint is a container's attachment to the node's bridge.
type Endpoint struct {
	ID string
	// NetNSPath is the container's network namespace (a bind mount); the
	// runtime's init joins it.
	NetNSPath string
	// Addr is the container's address with the subnet's prefix length.
	Addr    netip.Prefix
	Gateway netip.Addr
	// Ports are the host-mode ports published to this container.
	Ports []PortMapping
}

// ValidateSubnet checks that s is an IPv4 network address with room for a
// gateway and at least one container (prefix length 8 to 30).
func ValidateSubnet(s netip.Prefix) error {
	if !s.IsValid() || !s.Addr().Is4() {
		return fmt.Errorf("%w: subnet %s: want an IPv4 CIDR such as 172.29.1.0/24", ErrInvalid, s)
	}
	if s.Bits() < 8 || s.Bits() > 30 {
		return fmt.Errorf("%w: subnet %s: prefix length must be 8 to 30", ErrInvalid, s)
	}
	if s.Masked() != s {
		return fmt.Errorf("%w: subnet %s: host bits set (did you mean %s?)", ErrInvalid, s, s.Masked())
	}
	return nil
}

// DefaultSubnet is a worker's subnet when none is configured:
// 172.29.N.0/24 with N the last byte of the node's IPv4 address, so that
// workers on one /24 never overlap. Workers on different /24s sharing a
// last byte must set their subnets explicitly.
func DefaultSubnet(nodeAddr netip.Addr) netip.Prefix {
	n := byte(0)
	if nodeAddr.Is4() {
		n = nodeAddr.As4()[3]
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 29, n, 0}), 24)
}

// DefaultBridge is the bridge name for subnet: "minke" and the subnet's
// third byte, so that several workers on one machine (tests, demos) get
// bridges of their own.
func DefaultBridge(subnet netip.Prefix) string {
	return fmt.Sprintf("minke%d", subnet.Addr().As4()[2])
}
