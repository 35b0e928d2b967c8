package controlapi

import (
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestValidateSandbox(t *testing.T) {
	with := func(f func(*minkepb.TaskSpec)) *minkepb.ServiceSpec {
		s := spec("a", "hello", 1)
		f(s.Task)
		return s
	}
	cases := []struct {
		name string
		spec *minkepb.ServiceSpec
		want string // "" = valid
	}{
		{"all options", with(func(t *minkepb.TaskSpec) {
			c := t.Container
			c.SeccompUnconfined, c.ReadOnly = true, true
			c.Mounts = []*minkepb.Mount{
				{Type: "bind", Source: "/srv/data", Target: "/data", Readonly: true},
				{Type: "volume", Source: "db", Target: "/var/lib/db"},
				{Type: "tmpfs", Target: "/run", TmpfsSizeBytes: 1 << 20, TmpfsMode: 0o755},
			}
			c.Hosts = []string{"10.0.0.2 db db.local"}
			c.DnsServers, c.DnsSearch, c.DnsOptions = []string{"10.0.0.53", "fd00::53"}, []string{"example.com"}, []string{"ndots:2"}
			c.Ulimits = []*minkepb.Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}, {Name: "core", Soft: -1, Hard: -1}}
			c.Groups = []string{"audio", "1000"}
			t.Resources = &minkepb.ResourceRequirements{Limits: &minkepb.Resources{Pids: 100}}
		}), ""},
		{"bad mount type", with(func(t *minkepb.TaskSpec) {
			t.Container.Mounts = []*minkepb.Mount{{Type: "nfs", Source: "x", Target: "/x"}}
		}), `invalid mounts[0] (type=nfs,source=x,target=/x): type "nfs": want bind, volume or tmpfs`},
		{"relative bind source", with(func(t *minkepb.TaskSpec) {
			t.Container.Mounts = []*minkepb.Mount{{Type: "bind", Source: "data", Target: "/x"}}
		}), `bind source "data": want an absolute host path`},
		{"mount on root", with(func(t *minkepb.TaskSpec) {
			t.Container.Mounts = []*minkepb.Mount{{Type: "tmpfs", Target: "/"}}
		}), `target "/": want an absolute path other than /`},
		{"bad volume name", with(func(t *minkepb.TaskSpec) {
			t.Container.Mounts = []*minkepb.Mount{{Type: "volume", Source: "../etc", Target: "/x"}}
		}), `volume source "../etc"`},
		{"same target twice", with(func(t *minkepb.TaskSpec) {
			t.Container.Mounts = []*minkepb.Mount{{Type: "tmpfs", Target: "/x"}, {Type: "tmpfs", Target: "/x/"}}
		}), `target "/x/" is mounted twice`},
		{"unknown ulimit", with(func(t *minkepb.TaskSpec) {
			t.Container.Ulimits = []*minkepb.Ulimit{{Name: "files", Soft: 1, Hard: 1}}
		}), `ulimit "files": want one of`},
		{"soft above hard", with(func(t *minkepb.TaskSpec) {
			t.Container.Ulimits = []*minkepb.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}
		}), "soft limit 10 is above the hard limit 5"},
		{"bad host line", with(func(t *minkepb.TaskSpec) { t.Container.Hosts = []string{"db 10.0.0.2"} }), `"db" is not an IP address`},
		{"bad dns server", with(func(t *minkepb.TaskSpec) { t.Container.DnsServers = []string{"dns.example"} }), `DNSServers entry "dns.example" is not an IP address`},
		{"negative pids", with(func(t *minkepb.TaskSpec) {
			t.Resources = &minkepb.ResourceRequirements{Limits: &minkepb.Resources{Pids: -2}}
		}), "invalid limits pids -2"},
		{"pids reservation", with(func(t *minkepb.TaskSpec) {
			t.Resources = &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{Pids: 5}}
		}), "a pids count can only be a limit"},
		{"bad group", with(func(t *minkepb.TaskSpec) { t.Container.Groups = []string{"a:b"} }), `Groups entry "a:b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := validateSpec(c.spec)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid spec refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}
