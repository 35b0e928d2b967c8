package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func replicated(n uint64) *minkepb.ServiceSpec_Replicated {
	return &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: n}}
}

func TestServiceCreateBuildsSpec(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *minkepb.ServiceSpec
	}{
		{
			name: "defaults",
			args: []string{"busybox"},
			want: &minkepb.ServiceSpec{
				Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox"}},
				Mode: replicated(1),
			},
		},
		{
			name: "command after image is args, flags stop at image",
			args: []string{"--name", "web", "--replicas", "3", "busybox", "sh", "-c", "echo hi; sleep 1d", "--replicas", "9"},
			want: &minkepb.ServiceSpec{
				Name: "web",
				Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{
					Image: "busybox",
					Args:  []string{"sh", "-c", "echo hi; sleep 1d", "--replicas", "9"},
				}},
				Mode: replicated(3),
			},
		},
		{
			name: "everything",
			args: []string{
				"--name=api", "--replicas=0", "-e", "A=1", "--env", "B=x=y", "--label", "tier=front",
				"--limit-memory", "64M", "--limit-cpu", "0.5", "--reserve-memory", "16mib", "--reserve-cpu", "0.25",
				"--entrypoint", "/bin/sh -c", "--workdir", "/srv", "--user", "1000:1000",
				"--stop-grace-period", "10s", "--restart-condition", "on-failure", "--restart-delay", "5s",
				"--restart-max-attempts", "3", "-d", "registry.example/api:1", "serve",
			},
			want: &minkepb.ServiceSpec{
				Name:   "api",
				Labels: map[string]string{"tier": "front"},
				Task: &minkepb.TaskSpec{
					Container: &minkepb.ContainerSpec{
						Image:           "registry.example/api:1",
						Command:         []string{"/bin/sh", "-c"},
						Args:            []string{"serve"},
						Env:             []string{"A=1", "B=x=y"},
						Dir:             "/srv",
						User:            "1000:1000",
						StopGracePeriod: durationpb.New(10 * time.Second),
					},
					Resources: &minkepb.ResourceRequirements{
						Limits:       &minkepb.Resources{NanoCpus: 500_000_000, MemoryBytes: 64 << 20},
						Reservations: &minkepb.Resources{NanoCpus: 250_000_000, MemoryBytes: 16 << 20},
					},
					Restart: &minkepb.RestartPolicy{
						Condition:   minkepb.RestartPolicy_ON_FAILURE,
						Delay:       durationpb.New(5 * time.Second),
						MaxAttempts: 3,
					},
				},
				Mode: replicated(0),
			},
		},
		{
			name: "only a limit",
			args: []string{"--limit-memory", "1G", "-d", "nginx"},
			want: &minkepb.ServiceSpec{
				Task: &minkepb.TaskSpec{
					Container: &minkepb.ContainerSpec{Image: "nginx"},
					Resources: &minkepb.ResourceRequirements{Limits: &minkepb.Resources{MemoryBytes: 1 << 30}},
				},
				Mode: replicated(1),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			code, stdout, stderr, _ := runFake(t, f, append([]string{"service", "create"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !proto.Equal(f.created, tt.want) {
				t.Errorf("spec:\n got %v\nwant %v", f.created, tt.want)
			}
			if !strings.HasPrefix(stdout, "svc0123456789abcdef\n") {
				t.Errorf("stdout %q does not start with the service ID", stdout)
			}
		})
	}
}

func TestServiceCreateRejectsBeforeRPC(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--replicas", "-2", "x"}, `Error: invalid --replicas "-2": want a non-negative integer`},
		{[]string{"--replicas", "three", "x"}, `invalid --replicas "three"`},
		{[]string{"--limit-memory", "64Q", "x"}, `Error: invalid --limit-memory "64Q": want a size like 64M, 512MiB or 1G`},
		{[]string{"--reserve-memory", "lots", "x"}, `invalid --reserve-memory "lots"`},
		{[]string{"--limit-cpu", "-0.5", "x"}, `invalid --limit-cpu "-0.5"`},
		{[]string{"--reserve-cpu", "half", "x"}, `invalid --reserve-cpu "half"`},
		{[]string{"--env", "NOEQUALS", "x"}, `invalid --env "NOEQUALS": want KEY=VALUE`},
		{[]string{"--restart-condition", "always", "x"}, `invalid --restart-condition "always": want any, on-failure or none`},
		{[]string{"--restart-delay", "5", "x"}, `invalid --restart-delay "5"`},
		{[]string{"--restart-max-attempts", "-1", "x"}, `invalid --restart-max-attempts "-1"`},
		{[]string{"--stop-grace-period", "-1s", "x"}, `invalid --stop-grace-period "-1s"`},
		{[]string{"--nope", "x"}, `unknown flag: --nope`},
		{[]string{}, `wants at least 1 argument(s), got 0`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := &fakeAPI{}
			code, _, stderr, connected := runFake(t, f, append([]string{"service", "create"}, tt.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if connected {
				t.Error("connected to the manager before validating")
			}
			if !strings.Contains(stderr, tt.wantErr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line containing %q", stderr, tt.wantErr)
			}
		})
	}
}
