//go:build !linux

package network

import (
	"errors"
	"log/slog"
	"net/netip"
)

// ErrUnsupported: container networking needs Linux.
var ErrUnsupported = errors.New("network: container networking needs Linux")

// Config configures a node's bridge network (see the Linux version).
type Config struct {
	Subnet      netip.Prefix
	Bridge      string
	ServicePool netip.Prefix
	StateDir    string
	Logger      *slog.Logger
}

// Manager is unavailable off Linux.
type Manager struct{}

func New(Config) (*Manager, error)                               { return nil, ErrUnsupported }
func (*Manager) Subnet() netip.Prefix                            { return netip.Prefix{} }
func (*Manager) Bridge() string                                  { return "" }
func (*Manager) Attached() int                                   { return 0 }
func (*Manager) Gateway() netip.Addr                             { return netip.Addr{} }
func (*Manager) NetNSPath(string) string                         { return "" }
func (*Manager) Attach(string, []PortMapping) (*Endpoint, error) { return nil, ErrUnsupported }
func (*Manager) Detach(string) error                             { return nil }
func (*Manager) SetIngress([]IngressRule) error                  { return ErrUnsupported }
func (*Manager) SetVIPs([]VIPRule) error                         { return ErrUnsupported }
func (*Manager) SetRoutes([]Route) error                         { return ErrUnsupported }
func (*Manager) Sweep(map[string]bool) error                     { return nil }
func (*Manager) Close() error                                    { return nil }

// RemoveLeftovers does nothing off Linux.
func RemoveLeftovers(string) error { return nil }
