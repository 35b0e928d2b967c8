//go:build !linux

package network

import (
	"log/slog"
	"net/netip"
)

// OverlayConfig configures a node's overlay networks (see the Linux version).
type OverlayConfig struct {
	StateDir      string
	LocalAddr     netip.Addr
	Port          int
	UnderlayNetNS string
	Logger        *slog.Logger
}

// Overlays is unavailable off Linux.
type Overlays struct{}

func NewOverlays(OverlayConfig) (*Overlays, error)                 { return nil, ErrUnsupported }
func (*Overlays) MTU() int                                         { return 0 }
func (*Overlays) NetNSPath(string) string                          { return "" }
func (*Overlays) Networks() []string                               { return nil }
func (*Overlays) Set([]OverlayNetwork) error                       { return ErrUnsupported }
func (*Overlays) Attach(string, string, []OverlayAttachment) error { return ErrUnsupported }
func (*Overlays) Adopt(string, string, []OverlayAttachment) error  { return ErrUnsupported }
func (*Overlays) Detach(string) error                              { return nil }
func (*Overlays) Sweep(map[string]bool) error                      { return nil }
func (*Overlays) Attached() int                                    { return 0 }
func (*Overlays) Close() error                                     { return nil }
