package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/runtime"
)

// moreUpdateOptions are `service update`'s forms of the create flags that
// other parts of swarmctl own (healthcheck, process, sandbox, ports), with
// docker's -add/-rm pairs for the repeatable ones.
type moreUpdateOptions struct {
	health                    healthOptions
	stopSignal                string
	init, readOnly            bool
	limitPids                 string
	mountAdd, mountRm         []string
	hostAdd, hostRm           []string
	dnsAdd, dnsRm             []string
	dnsSearchAdd, dnsSearchRm []string
	dnsOptionAdd, dnsOptionRm []string
	ulimitAdd, ulimitRm       []string
	groupAdd, groupRm         []string
	publishAdd, publishRm     []string
	endpointMode              string
}

func (o *moreUpdateOptions) register(f *pflag.FlagSet) {
	o.health.register(f)
	f.StringVar(&o.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGQUIT")
	f.BoolVar(&o.init, "init", false, "run an init inside the container (--init=false to stop)")
	f.BoolVar(&o.readOnly, "read-only", false, "mount the root filesystem read-only (--read-only=false to undo)")
	f.StringVar(&o.limitPids, "limit-pids", "", "most processes and threads the task may have (0: unlimited)")
	f.StringArrayVar(&o.mountAdd, "mount-add", nil, "add or replace (by target) a mount, as --mount of create (repeatable)")
	f.StringArrayVar(&o.mountRm, "mount-rm", nil, "remove a mount by its target path (repeatable)")
	f.StringArrayVar(&o.hostAdd, "host-add", nil, "add a line to /etc/hosts: HOST:IP (repeatable)")
	f.StringArrayVar(&o.hostRm, "host-rm", nil, "remove /etc/hosts lines of HOST (repeatable)")
	f.StringArrayVar(&o.dnsAdd, "dns-add", nil, "add a DNS server (repeatable)")
	f.StringArrayVar(&o.dnsRm, "dns-rm", nil, "remove a DNS server (repeatable)")
	f.StringArrayVar(&o.dnsSearchAdd, "dns-search-add", nil, "add a DNS search domain (repeatable)")
	f.StringArrayVar(&o.dnsSearchRm, "dns-search-rm", nil, "remove a DNS search domain (repeatable)")
	f.StringArrayVar(&o.dnsOptionAdd, "dns-option-add", nil, "add a resolver option (repeatable)")
	f.StringArrayVar(&o.dnsOptionRm, "dns-option-rm", nil, "remove a resolver option (repeatable)")
	f.StringArrayVar(&o.ulimitAdd, "ulimit-add", nil, "add or replace (by name) a limit NAME=SOFT[:HARD] (repeatable)")
	f.StringArrayVar(&o.ulimitRm, "ulimit-rm", nil, "remove a limit by NAME (repeatable)")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "add a supplementary group (repeatable)")
	f.StringArrayVar(&o.groupRm, "group-rm", nil, "remove a supplementary group (repeatable)")
	f.StringArrayVar(&o.publishAdd, "publish-add", nil, "publish a port, as --publish of create; replaces one with the same target and protocol (repeatable)")
	f.StringArrayVar(&o.publishRm, "publish-rm", nil, "stop publishing TARGET[/PROTOCOL] (repeatable)")
	f.StringVar(&o.endpointMode, "endpoint-mode", "", "vip or dnsrr")
}

// apply changes spec as the given flags say.
func (o *moreUpdateOptions) apply(spec *minkepb.ServiceSpec, changed func(string) bool) error {
	task := spec.Task
	c := task.Container
	for _, f := range []string{"health-cmd", "health-interval", "health-timeout", "health-start-period", "health-retries", "no-healthcheck"} {
		if changed(f) {
			if err := o.health.apply(c); err != nil {
				return err
			}
			break
		}
	}
	if changed("stop-signal") {
		if _, err := runtime.ParseSignal(o.stopSignal); err != nil {
			return fmt.Errorf("invalid --stop-signal: %w", err)
		}
		c.StopSignal = o.stopSignal
	}
	if changed("init") {
		c.Init = o.init
	}
	if changed("read-only") {
		c.ReadOnly = o.readOnly
	}
	if changed("limit-pids") {
		n, err := parseCount("limit-pids", o.limitPids)
		if err != nil {
			return err
		}
		if task.Resources == nil {
			task.Resources = &minkepb.ResourceRequirements{}
		}
		if task.Resources.Limits == nil {
			task.Resources.Limits = &minkepb.Resources{}
		}
		task.Resources.Limits.Pids = int64(n)
	}
	for _, t := range o.mountRm {
		c.Mounts = slices.DeleteFunc(c.Mounts, func(m *minkepb.Mount) bool { return m.GetTarget() == t })
	}
	for _, s := range o.mountAdd {
		m, err := parseMount(s)
		if err != nil {
			return fmt.Errorf("--mount-add: %w", err)
		}
		c.Mounts = slices.DeleteFunc(c.Mounts, func(x *minkepb.Mount) bool { return x.GetTarget() == m.GetTarget() })
		c.Mounts = append(c.Mounts, m)
	}
	for _, h := range o.hostRm {
		c.Hosts = slices.DeleteFunc(c.Hosts, func(line string) bool {
			_, name, _ := strings.Cut(line, " ")
			return name == h
		})
	}
	for _, h := range o.hostAdd {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || ip == "" {
			return fmt.Errorf("invalid --host-add %q: want HOST:IP", h)
		}
		c.Hosts = append(c.Hosts, ip+" "+name)
	}
	c.DnsServers = addRemove(c.DnsServers, o.dnsAdd, o.dnsRm)
	c.DnsSearch = addRemove(c.DnsSearch, o.dnsSearchAdd, o.dnsSearchRm)
	c.DnsOptions = addRemove(c.DnsOptions, o.dnsOptionAdd, o.dnsOptionRm)
	c.Groups = addRemove(c.Groups, o.groupAdd, o.groupRm)
	for _, name := range o.ulimitRm {
		c.Ulimits = slices.DeleteFunc(c.Ulimits, func(u *minkepb.Ulimit) bool { return u.GetName() == name })
	}
	for _, s := range o.ulimitAdd {
		u, err := parseUlimit(s)
		if err != nil {
			return fmt.Errorf("--ulimit-add: %w", err)
		}
		c.Ulimits = slices.DeleteFunc(c.Ulimits, func(x *minkepb.Ulimit) bool { return x.GetName() == u.GetName() })
		c.Ulimits = append(c.Ulimits, u)
	}
	return o.applyEndpoint(spec, changed)
}

func (o *moreUpdateOptions) applyEndpoint(spec *minkepb.ServiceSpec, changed func(string) bool) error {
	if len(o.publishAdd) == 0 && len(o.publishRm) == 0 && !changed("endpoint-mode") {
		return nil
	}
	if spec.Endpoint == nil {
		spec.Endpoint = &minkepb.EndpointSpec{}
	}
	ep := spec.Endpoint
	for _, r := range o.publishRm {
		port, proto, hasProto := strings.Cut(r, "/")
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid --publish-rm %q: want TARGET[/tcp|/udp]", r)
		}
		ep.Ports = slices.DeleteFunc(ep.Ports, func(p *minkepb.PortConfig) bool {
			return p.GetTargetPort() == uint32(n) && (!hasProto || strings.EqualFold(p.GetProtocol().String(), proto))
		})
	}
	if len(o.publishAdd) > 0 {
		add, err := parsePublish(o.publishAdd)
		if err != nil {
			return fmt.Errorf("--publish-add: %w", err)
		}
		for _, p := range add.GetPorts() {
			ep.Ports = slices.DeleteFunc(ep.Ports, func(x *minkepb.PortConfig) bool {
				return x.GetTargetPort() == p.GetTargetPort() && x.GetProtocol() == p.GetProtocol()
			})
			ep.Ports = append(ep.Ports, p)
		}
	}
	if changed("endpoint-mode") {
		m, err := parseEndpoint(nil, o.endpointMode)
		if err != nil {
			return err
		}
		ep.Mode = m.GetMode()
	}
	return nil
}

// addRemove removes rm from list, then appends the entries of add it
// lacks.
func addRemove(list, add, rm []string) []string {
	list = slices.DeleteFunc(list, func(s string) bool { return slices.Contains(rm, s) })
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}
