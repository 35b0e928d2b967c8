//go:build !linux

package network

// Adopt needs Linux.
func (*Manager) Adopt(string, []PortMapping) (*Endpoint, error) { return nil, ErrUnsupported }
