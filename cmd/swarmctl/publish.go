package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// addPublishFlags registers --publish on a service command.
func addPublishFlags(f *pflag.FlagSet, o *createOptions) {
	f.StringArrayVarP(&o.publish, "publish", "p", nil,
		"publish a port: [PUBLISHED:]TARGET[/tcp|/udp], or published=P,target=T,protocol=tcp|udp,mode=ingress|host (repeatable; ingress: the port on every node)")
	f.StringVar(&o.endpointMode, "endpoint-mode", "", "how the service name resolves in containers: vip (a virtual IP balanced over the tasks; default) or dnsrr (the tasks' addresses)")
}

// parseEndpoint turns --publish values and --endpoint-mode into an
// endpoint spec; nil when neither is given.
func parseEndpoint(values []string, mode string) (*minkepb.EndpointSpec, error) {
	ep, err := parsePublish(values)
	if err != nil || mode == "" {
		return ep, err
	}
	if ep == nil {
		ep = &minkepb.EndpointSpec{}
	}
	switch strings.ToLower(mode) {
	case "vip":
		ep.Mode = minkepb.EndpointSpec_VIP
	case "dnsrr":
		ep.Mode = minkepb.EndpointSpec_DNSRR
	default:
		return nil, fmt.Errorf("invalid --endpoint-mode %q: want vip or dnsrr", mode)
	}
	return ep, nil
}

// parsePublish turns --publish values into an endpoint spec; nil when none.
func parsePublish(values []string) (*minkepb.EndpointSpec, error) {
	if len(values) == 0 {
		return nil, nil
	}
	ep := &minkepb.EndpointSpec{}
	for _, v := range values {
		var (
			p   *minkepb.PortConfig
			err error
		)
		if strings.Contains(v, "=") {
			p, err = parsePublishLong(v)
		} else {
			p, err = parsePublishShort(v)
		}
		if err != nil {
			return nil, err
		}
		ep.Ports = append(ep.Ports, p)
	}
	return ep, nil
}

// parsePublishShort reads docker's short form [PUBLISHED:]TARGET[/PROTO].
func parsePublishShort(v string) (*minkepb.PortConfig, error) {
	ports, proto, hasProto := strings.Cut(v, "/")
	p := &minkepb.PortConfig{}
	if hasProto {
		if err := setProtocol(p, v, proto); err != nil {
			return nil, err
		}
	}
	pub, target, hasPub := strings.Cut(ports, ":")
	if !hasPub {
		target, pub = pub, ""
	}
	var err error
	if p.TargetPort, err = parsePort(v, "target", target, false); err != nil {
		return nil, err
	}
	if p.PublishedPort, err = parsePort(v, "published", pub, true); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePublishLong reads published=P,target=T,protocol=X,mode=Y.
func parsePublishLong(v string) (*minkepb.PortConfig, error) {
	p := &minkepb.PortConfig{}
	var err error
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "published":
			p.PublishedPort, err = parsePort(v, "published", val, false)
		case "target":
			p.TargetPort, err = parsePort(v, "target", val, false)
		case "protocol":
			err = setProtocol(p, v, val)
		case "mode":
			switch val {
			case "ingress":
				p.PublishMode = minkepb.PortConfig_INGRESS
			case "host":
				p.PublishMode = minkepb.PortConfig_HOST
			default:
				err = fmt.Errorf("invalid --publish %q: mode %q: want ingress or host", v, val)
			}
		default:
			err = fmt.Errorf("invalid --publish %q: unknown key %q: want published, target, protocol or mode", v, k)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.TargetPort == 0 {
		return nil, fmt.Errorf("invalid --publish %q: target=PORT is required", v)
	}
	return p, nil
}

func setProtocol(p *minkepb.PortConfig, v, proto string) error {
	switch strings.ToLower(proto) {
	case "tcp":
		p.Protocol = minkepb.PortConfig_TCP
	case "udp":
		p.Protocol = minkepb.PortConfig_UDP
	default:
		return fmt.Errorf("invalid --publish %q: protocol %q: want tcp or udp", v, proto)
	}
	return nil
}

func parsePort(v, which, s string, optional bool) (uint32, error) {
	if s == "" && optional {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid --publish %q: %s port %q: want 1-65535", v, which, s)
	}
	return uint32(n), nil
}

// formatVIP renders a service's virtual IP, or its DNSRR mode.
func formatVIP(s *minkepb.Service) string {
	if s.GetSpec().GetEndpoint().GetMode() == minkepb.EndpointSpec_DNSRR {
		return "none (endpoint mode dnsrr)"
	}
	return s.GetEndpoint().GetVirtualIp()
}

// formatPorts renders an endpoint's ports as "8080:80/tcp (ingress)".
func formatPorts(ep *minkepb.Endpoint) string {
	var parts []string
	for _, p := range ep.GetPorts() {
		parts = append(parts, fmt.Sprintf("%d:%d/%s (%s)", p.GetPublishedPort(), p.GetTargetPort(),
			strings.ToLower(p.GetProtocol().String()), strings.ToLower(p.GetPublishMode().String())))
	}
	return strings.Join(parts, ", ")
}
