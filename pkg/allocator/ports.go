package allocator

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// The dynamic range ingress ports come from when none is asked for
// (swarm's).
const (
	DynamicPortStart = 30000
	DynamicPortEnd   = 32767
)

// Errors.
var (
	// ErrInvalidPort: a port spec is out of range or repeated.
	ErrInvalidPort = errors.New("allocator: invalid port")
	// ErrPortInUse: another service holds the published port.
	ErrPortInUse = errors.New("allocator: published port in use")
	// ErrNoPorts: the dynamic range is exhausted.
	ErrNoPorts = errors.New("allocator: no free port in the dynamic range")
)

type portKey struct {
	proto minkepb.PortConfig_Protocol
	port  uint32
}

// ValidatePorts checks an endpoint spec on its own: ports in 1-65535 (a
// published port may be 0 for ingress: allocate one), host-mode ports
// given, no published port twice.
func ValidatePorts(spec *minkepb.EndpointSpec) error {
	seen := map[portKey]bool{}
	for i, p := range spec.GetPorts() {
		if p.GetTargetPort() < 1 || p.GetTargetPort() > 65535 {
			return fmt.Errorf("%w: endpoint.ports[%d].target_port %d: want 1-65535", ErrInvalidPort, i, p.GetTargetPort())
		}
		if p.GetPublishedPort() > 65535 {
			return fmt.Errorf("%w: endpoint.ports[%d].published_port %d: want 1-65535 (or 0: allocate one)", ErrInvalidPort, i, p.GetPublishedPort())
		}
		if p.GetPublishedPort() == 0 {
			if p.GetPublishMode() == minkepb.PortConfig_HOST {
				return fmt.Errorf("%w: endpoint.ports[%d]: a host-mode port needs a published port", ErrInvalidPort, i)
			}
			continue
		}
		k := portKey{p.GetProtocol(), p.GetPublishedPort()}
		if seen[k] {
			return fmt.Errorf("%w: endpoint.ports[%d]: published port %d/%s is given twice", ErrInvalidPort, i, p.GetPublishedPort(), protoName(p))
		}
		seen[k] = true
	}
	return nil
}

func protoName(p *minkepb.PortConfig) string {
	if p.GetProtocol() == minkepb.PortConfig_UDP {
		return "udp"
	}
	return "tcp"
}

// AllocatePorts returns the endpoint for spec: each port as given, with
// ingress ports that ask for none allocated from the dynamic range. A
// port the service had already (prev, on update) is kept. A published port
// is refused when another service (others; the service itself may be among
// them) publishes it in ingress mode, or when this one wants it in ingress
// mode and another publishes it at all: an ingress port is taken on every
// node.
func AllocatePorts(serviceID string, spec *minkepb.EndpointSpec, prev *minkepb.Endpoint, others []*minkepb.Service) (*minkepb.Endpoint, error) {
	if err := ValidatePorts(spec); err != nil {
		return nil, err
	}
	ingress := map[portKey]string{} // held in ingress mode by service name
	any := map[portKey]string{}     // held in any mode
	for _, s := range others {
		if s.GetMeta().GetId() == serviceID {
			continue
		}
		for _, p := range s.GetEndpoint().GetPorts() {
			k := portKey{p.GetProtocol(), p.GetPublishedPort()}
			any[k] = s.GetSpec().GetName()
			if p.GetPublishMode() == minkepb.PortConfig_INGRESS {
				ingress[k] = s.GetSpec().GetName()
			}
		}
	}
	// Dynamic ports the service had, by target, to keep them on update.
	had := map[portKey]uint32{}
	for _, p := range prev.GetPorts() {
		if p.GetPublishMode() == minkepb.PortConfig_INGRESS {
			had[portKey{p.GetProtocol(), p.GetTargetPort()}] = p.GetPublishedPort()
		}
	}
	out := &minkepb.Endpoint{}
	taken := map[portKey]bool{}
	var dynamic []*minkepb.PortConfig
	for _, p := range spec.GetPorts() {
		p = proto.Clone(p).(*minkepb.PortConfig)
		out.Ports = append(out.Ports, p)
		if p.GetPublishedPort() == 0 {
			dynamic = append(dynamic, p)
			continue
		}
		k := portKey{p.GetProtocol(), p.GetPublishedPort()}
		if name, ok := ingress[k]; ok {
			return nil, fmt.Errorf("%w: port %d/%s is published by service %q in ingress mode (on every node)", ErrPortInUse, k.port, protoName(p), name)
		}
		if name, ok := any[k]; ok && p.GetPublishMode() == minkepb.PortConfig_INGRESS {
			return nil, fmt.Errorf("%w: port %d/%s is published by service %q; an ingress port needs it on every node", ErrPortInUse, k.port, protoName(p), name)
		}
		taken[k] = true
	}
	for _, p := range dynamic {
		if port, ok := had[portKey{p.GetProtocol(), p.GetTargetPort()}]; ok {
			k := portKey{p.GetProtocol(), port}
			if _, held := any[k]; !held && !taken[k] {
				p.PublishedPort, taken[k] = port, true
				continue
			}
		}
		found := false
		for port := uint32(DynamicPortStart); port <= DynamicPortEnd; port++ {
			k := portKey{p.GetProtocol(), port}
			if _, held := any[k]; held || taken[k] {
				continue
			}
			p.PublishedPort, taken[k], found = port, true, true
			break
		}
		if !found {
			return nil, fmt.Errorf("%w (%d-%d)", ErrNoPorts, DynamicPortStart, DynamicPortEnd)
		}
	}
	return out, nil
}
