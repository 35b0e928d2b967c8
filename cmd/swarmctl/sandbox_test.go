package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestServiceCreateSandboxFlags(t *testing.T) {
	f := &fakeAPI{}
	code, _, stderr, _ := runFake(t, f, "service", "create", "-d",
		"--security-opt", "seccomp=unconfined", "--read-only",
		"--mount", "type=bind,source=/srv/data,target=/data,readonly",
		"--mount", "src=db,dst=/var/lib/db,volume-nocopy",
		"--mount", "type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=755",
		"--add-host", "db:10.0.0.2", "--add-host", "v6:fd00::2",
		"--dns", "10.0.0.53", "--dns-search", "example.com", "--dns-option", "ndots:2",
		"--ulimit", "nofile=4096:8192", "--ulimit", "core=-1",
		"--group", "audio", "--limit-pids", "100",
		"busybox")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := &minkepb.ServiceSpec{
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{
				Image:             "busybox",
				SeccompUnconfined: true,
				ReadOnly:          true,
				Mounts: []*minkepb.Mount{
					{Type: "bind", Source: "/srv/data", Target: "/data", Readonly: true},
					{Type: "volume", Source: "db", Target: "/var/lib/db", VolumeNocopy: true},
					{Type: "tmpfs", Target: "/run", TmpfsSizeBytes: 64 << 20, TmpfsMode: 0o755},
				},
				Hosts:      []string{"10.0.0.2 db", "fd00::2 v6"},
				DnsServers: []string{"10.0.0.53"},
				DnsSearch:  []string{"example.com"},
				DnsOptions: []string{"ndots:2"},
				Ulimits:    []*minkepb.Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}, {Name: "core", Soft: -1, Hard: -1}},
				Groups:     []string{"audio"},
			},
			Resources: &minkepb.ResourceRequirements{Limits: &minkepb.Resources{Pids: 100}},
		},
		Mode: replicated(1),
	}
	if !proto.Equal(f.created, want) {
		t.Errorf("spec:\n got %v\nwant %v", f.created, want)
	}
}

func TestServiceCreateSandboxFlagsRejected(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--security-opt", "seccomp=/etc/profile.json", "x"}, `invalid --security-opt "seccomp=/etc/profile.json": only seccomp=unconfined is supported`},
		{[]string{"--security-opt", "apparmor=unconfined", "x"}, `invalid --security-opt "apparmor=unconfined"`},
		{[]string{"--mount", "type=nfs,src=a,dst=/a", "x"}, `invalid --mount "type=nfs,src=a,dst=/a": type "nfs": want bind, volume or tmpfs`},
		{[]string{"--mount", "type=bind,src=/a", "x"}, `target is required`},
		{[]string{"--mount", "type=volume,dst=/a", "x"}, `source is required for type=volume`},
		{[]string{"--mount", "type=tmpfs,dst=/a,tmpfs-mode=999", "x"}, `tmpfs-mode="999"`},
		{[]string{"--mount", "type=tmpfs,dst=/a,color=red", "x"}, `unknown key "color"`},
		{[]string{"--ulimit", "nofile", "x"}, `invalid --ulimit "nofile": want NAME=SOFT[:HARD]`},
		{[]string{"--ulimit", "nofile=lots", "x"}, `soft limit "lots" is not a number`},
		{[]string{"--add-host", "db", "x"}, `invalid --add-host "db": want HOST:IP`},
		{[]string{"--limit-pids", "-5", "x"}, `invalid --limit-pids "-5"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeAPI{}
			code, _, stderr, connected := runFake(t, f, append([]string{"service", "create"}, tt.args...)...)
			if code != 1 || connected {
				t.Errorf("exit %d, connected %v; want 1 before connecting", code, connected)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q, want %q", stderr, tt.wantErr)
			}
		})
	}
}
