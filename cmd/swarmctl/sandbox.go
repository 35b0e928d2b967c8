package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// sandboxOptions are the `service create` flags that shape the container's
// sandbox, with docker's spelling. The manager validates the values again
// with the runtime's rules; the checks here only catch syntax early.
type sandboxOptions struct {
	securityOpts []string
	readOnly     bool
	mounts       []string
	hosts        []string
	dns          []string
	dnsSearch    []string
	dnsOptions   []string
	ulimits      []string
	groups       []string
	limitPids    string
}

func (o *sandboxOptions) register(f *pflag.FlagSet) {
	f.StringArrayVar(&o.securityOpts, "security-opt", nil, "security option; supported: seccomp=unconfined (repeatable)")
	f.BoolVar(&o.readOnly, "read-only", false, "mount the container's root filesystem read-only")
	f.StringArrayVar(&o.mounts, "mount", nil, "attach a mount: type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=64m][,tmpfs-mode=1777] (repeatable)")
	f.StringArrayVar(&o.hosts, "add-host", nil, "add a line to /etc/hosts: HOST:IP (repeatable; docker service create calls it --host, which swarmctl uses for the manager address)")
	f.StringArrayVar(&o.dns, "dns", nil, "DNS server for /etc/resolv.conf (repeatable)")
	f.StringArrayVar(&o.dnsSearch, "dns-search", nil, "DNS search domain (repeatable)")
	f.StringArrayVar(&o.dnsOptions, "dns-option", nil, "resolver option, e.g. ndots:2 (repeatable)")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "resource limit NAME=SOFT[:HARD], e.g. nofile=4096:8192; -1 is unlimited (repeatable)")
	f.StringArrayVar(&o.groups, "group", nil, "add a supplementary group, by name or gid (repeatable)")
	f.StringVar(&o.limitPids, "limit-pids", "", "most processes and threads the task may have (0: unlimited)")
}

// apply writes the options into task.
func (o *sandboxOptions) apply(task *minkepb.TaskSpec) error {
	c := task.Container
	for _, s := range o.securityOpts {
		switch k, v, _ := strings.Cut(s, "="); {
		case k == "seccomp" && v == "unconfined":
			c.SeccompUnconfined = true
		case k == "seccomp":
			return fmt.Errorf("invalid --security-opt %q: only seccomp=unconfined is supported (the default is docker's profile)", s)
		default:
			return fmt.Errorf("invalid --security-opt %q: want seccomp=unconfined", s)
		}
	}
	c.ReadOnly = o.readOnly
	for _, s := range o.mounts {
		m, err := parseMount(s)
		if err != nil {
			return err
		}
		c.Mounts = append(c.Mounts, m)
	}
	for _, h := range o.hosts {
		// docker's --host HOST:IP; the IP may itself hold colons (IPv6).
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || ip == "" {
			return fmt.Errorf("invalid --add-host %q: want HOST:IP", h)
		}
		c.Hosts = append(c.Hosts, ip+" "+name)
	}
	c.DnsServers, c.DnsSearch, c.DnsOptions = o.dns, o.dnsSearch, o.dnsOptions
	for _, s := range o.ulimits {
		u, err := parseUlimit(s)
		if err != nil {
			return err
		}
		c.Ulimits = append(c.Ulimits, u)
	}
	c.Groups = o.groups
	if o.limitPids != "" {
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
	return nil
}

// parseMount parses docker's --mount syntax: comma-separated key=value
// pairs type (default volume), source|src, target|destination|dst,
// readonly|ro[=true|false], tmpfs-size and tmpfs-mode (octal).
func parseMount(s string) (*minkepb.Mount, error) {
	m := &minkepb.Mount{Type: "volume"}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid --mount %q: %s", s, fmt.Sprintf(format, args...))
	}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(field), "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			if !hasValue {
				m.Readonly = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, bad("readonly=%q: want true or false", v)
			}
			m.Readonly = b
		case "tmpfs-size":
			n, err := parseSize("mount tmpfs-size", v)
			if err != nil {
				return nil, bad("tmpfs-size=%q: want a size like 64m", v)
			}
			m.TmpfsSizeBytes = n
		case "volume-nocopy":
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(v); err != nil {
					return nil, bad("volume-nocopy=%q: want true or false", v)
				}
			}
			m.VolumeNocopy = b
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return nil, bad("tmpfs-mode=%q: want an octal mode such as 1777", v)
			}
			m.TmpfsMode = uint32(n)
		default:
			return nil, bad("unknown key %q; want type, source, target, readonly, volume-nocopy, tmpfs-size or tmpfs-mode", k)
		}
	}
	switch m.Type {
	case "bind", "volume", "tmpfs":
	default:
		return nil, bad("type %q: want bind, volume or tmpfs", m.Type)
	}
	if m.Target == "" {
		return nil, bad("target is required")
	}
	if m.Type != "tmpfs" && m.Source == "" {
		return nil, bad("source is required for type=%s", m.Type)
	}
	return m, nil
}

// parseUlimit parses docker's --ulimit NAME=SOFT[:HARD]; HARD defaults to
// SOFT.
func parseUlimit(s string) (*minkepb.Ulimit, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("invalid --ulimit %q: want NAME=SOFT[:HARD]", s)
	}
	softS, hardS, hasHard := strings.Cut(vals, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid --ulimit %q: soft limit %q is not a number", s, softS)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return nil, fmt.Errorf("invalid --ulimit %q: hard limit %q is not a number", s, hardS)
		}
	}
	return &minkepb.Ulimit{Name: strings.ToLower(name), Soft: soft, Hard: hard}, nil
}
