package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// parseUpdate runs the flags of `service update` through cobra and applies
// them to a copy of base.
func parseUpdate(t *testing.T, base *minkepb.ServiceSpec, args ...string) (*minkepb.ServiceSpec, error) {
	t.Helper()
	var o serviceUpdateOptions
	cmd := serviceUpdateCmd(&app{}, &o)
	if err := cmd.Flags().Parse(args); err != nil {
		return nil, err
	}
	return applyServiceUpdate(proto.Clone(base).(*minkepb.ServiceSpec), o, cmd.Flags().Changed)
}

func baseSpec() *minkepb.ServiceSpec {
	return &minkepb.ServiceSpec{
		Name: "web",
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "hello:1", Env: []string{"A=1", "B=2"}, Args: []string{"-listen", ":80"}},
			Placement: &minkepb.Placement{Constraints: []string{"node.role==worker"}},
		},
		Labels: map[string]string{"tier": "front"},
		Mode:   &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 2}},
	}
}

func TestServiceUpdateFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(*minkepb.ServiceSpec) string
	}{
		{"image and args", []string{"--image", "hello:2", "--args", "-exit 1"}, func(s *minkepb.ServiceSpec) string {
			c := s.GetTask().GetContainer()
			if c.GetImage() != "hello:2" || strings.Join(c.GetArgs(), " ") != "-exit 1" {
				return prototext.Format(c)
			}
			return ""
		}},
		{"env add replaces by key, rm removes", []string{"--env-add", "A=9", "--env-add", "C=3", "--env-rm", "B"}, func(s *minkepb.ServiceSpec) string {
			if got := strings.Join(s.GetTask().GetContainer().GetEnv(), ","); got != "A=9,C=3" {
				return got
			}
			return ""
		}},
		{"labels", []string{"--label-add", "x=y", "--label-rm", "tier"}, func(s *minkepb.ServiceSpec) string {
			if len(s.GetLabels()) != 1 || s.GetLabels()["x"] != "y" {
				return prototext.Format(s)
			}
			return ""
		}},
		{"constraints add and rm", []string{"--constraint-add", "node.labels.zone==a", "--constraint-rm", "node.role == worker"}, func(s *minkepb.ServiceSpec) string {
			if got := strings.Join(s.GetTask().GetPlacement().GetConstraints(), ","); got != "node.labels.zone==a" {
				return got
			}
			return ""
		}},
		{"replicas and resources", []string{"--replicas", "5", "--limit-memory", "64M", "--reserve-cpu", "0.5"}, func(s *minkepb.ServiceSpec) string {
			r := s.GetTask().GetResources()
			if s.GetReplicated().GetReplicas() != 5 || r.GetLimits().GetMemoryBytes() != 64<<20 || r.GetReservations().GetNanoCpus() != 5e8 {
				return prototext.Format(s)
			}
			return ""
		}},
		{"update config over swarm's defaults", []string{"--update-parallelism", "2", "--update-order", "start-first", "--update-failure-action", "rollback", "--update-delay", "3s"},
			func(s *minkepb.ServiceSpec) string {
				want := &minkepb.UpdateConfig{Parallelism: 2, Order: minkepb.UpdateConfig_START_FIRST, FailureAction: minkepb.UpdateConfig_ROLLBACK,
					Delay: durationpb.New(3 * time.Second), Monitor: durationpb.New(5 * time.Second)}
				if !proto.Equal(s.GetUpdateConfig(), want) || s.GetRollbackConfig() != nil {
					return prototext.Format(s)
				}
				return ""
			}},
		{"rollback config", []string{"--rollback-parallelism", "0", "--rollback-monitor", "1s", "--rollback-max-failure-ratio", "0.25"},
			func(s *minkepb.ServiceSpec) string {
				c := s.GetRollbackConfig()
				if c.GetParallelism() != 0 || c.GetMonitor().AsDuration() != time.Second || c.GetMaxFailureRatio() != 0.25 || s.GetUpdateConfig() != nil {
					return prototext.Format(s)
				}
				return ""
			}},
		{"force bumps the counter", []string{"--force"}, func(s *minkepb.ServiceSpec) string {
			if s.GetTask().GetForceUpdate() != 1 {
				return prototext.Format(s.GetTask())
			}
			return ""
		}},
		{"restart policy", []string{"--restart-condition", "on-failure", "--restart-window", "1m"}, func(s *minkepb.ServiceSpec) string {
			p := s.GetTask().GetRestart()
			if p.GetCondition() != minkepb.RestartPolicy_ON_FAILURE || p.GetWindow().AsDuration() != time.Minute {
				return prototext.Format(p)
			}
			return ""
		}},
		{"nothing given changes nothing", nil, func(s *minkepb.ServiceSpec) string {
			if !proto.Equal(s, baseSpec()) {
				return prototext.Format(s)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUpdate(t, baseSpec(), tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if bad := tc.check(got); bad != "" {
				t.Errorf("unexpected spec:\n%s", bad)
			}
		})
	}
}

func TestServiceUpdateFlagErrors(t *testing.T) {
	global := baseSpec()
	global.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	for _, tc := range []struct {
		name string
		base *minkepb.ServiceSpec
		args []string
		want string
	}{
		{"negative parallelism", baseSpec(), []string{"--update-parallelism", "-1"}, `invalid --update-parallelism "-1"`},
		{"bad constraint", baseSpec(), []string{"--constraint-add", "node.labels.zone=a"}, `--constraint-add: invalid constraint "node.labels.zone=a"`},
		{"unknown key", baseSpec(), []string{"--constraint-add", "node.colour==red"}, `unknown key "node.colour"`},
		{"mode change", baseSpec(), []string{"--mode", "global"}, "cannot change"},
		{"replicas of a global service", global, []string{"--replicas", "2"}, "--replicas does not apply"},
		{"ratio", baseSpec(), []string{"--update-max-failure-ratio", "2"}, "between 0 and 1"},
		{"order", baseSpec(), []string{"--rollback-order", "random"}, `invalid --rollback-order "random"`},
		{"rollback cannot roll back", baseSpec(), []string{"--rollback-failure-action", "rollback"}, "pause or continue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseUpdate(t, tc.base, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestBuildMode(t *testing.T) {
	for _, tc := range []struct {
		mode, replicas, concurrent string
		want                       string // prototext of the spec, or the error
	}{
		{"", "", "", "replicated:{replicas:1}"},
		{"replicated", "3", "", "replicated:{replicas:3}"},
		{"global", "", "", "global:{}"},
		{"replicated-job", "5", "2", "replicated_job:{max_concurrent:2 total_completions:5}"},
		{"global-job", "", "", "global_job:{}"},
		{"replicated-job", "0", "", "invalid --replicas 0 for a replicated job"},
		{"global", "2", "", "--replicas does not apply to --mode global"},
		{"replicated", "2", "1", "--max-concurrent applies only to --mode replicated-job"},
		{"daemon", "", "", `invalid --mode "daemon"`},
	} {
		spec, err := buildMode(tc.mode, tc.replicas, tc.concurrent)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.Join(strings.Fields(prototext.Format(spec)), "")
		}
		if !strings.Contains(got, strings.ReplaceAll(tc.want, " ", "")) && !strings.Contains(got, tc.want) {
			t.Errorf("buildMode(%q, %q, %q) = %q, want %q", tc.mode, tc.replicas, tc.concurrent, got, tc.want)
		}
	}
}

func TestWriteServicesModesAndUpdates(t *testing.T) {
	job := service("bbbb0123456789abcdef", "batch", "busybox", 0)
	job.Spec.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: 5, MaxConcurrent: 2}}
	global := service("cccc0123456789abcdef", "agent", "agent:1", 0)
	global.Spec.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
	web := service("aaaa0123456789abcdef", "web", "nginx:1.27", 3)
	web.UpdateStatus = &minkepb.UpdateStatus{State: minkepb.UpdateStatus_ROLLBACK_COMPLETED, Message: "rollback completed"}
	counts := map[string]*minkepb.ReplicaCounts{
		"aaaa0123456789abcdef": {Running: 3, Desired: 3},
		"bbbb0123456789abcdef": {Running: 2, Desired: 2, Completed: 3, TotalCompletions: 5},
		"cccc0123456789abcdef": {Running: 4, Desired: 4},
	}
	var b bytes.Buffer
	if err := writeServices(&b, []*minkepb.Service{web, job, global}, counts); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID             NAME    MODE             REPLICAS              IMAGE        UPDATE\n" +
		"cccc01234567   agent   global           4/4                   agent:1      \n" +
		"bbbb01234567   batch   replicated-job   2/2 (3/5 completed)   busybox      \n" +
		"aaaa01234567   web     replicated       3/3                   nginx:1.27   rollback_completed\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

func TestServiceUpdateSandboxFlags(t *testing.T) {
	base := baseSpec()
	base.Task.Container.Mounts = []*minkepb.Mount{{Type: "tmpfs", Target: "/tmp"}, {Type: "volume", Source: "data", Target: "/data"}}
	base.Task.Container.DnsServers = []string{"10.0.0.1"}
	base.Task.Container.Init = true
	base.Endpoint = &minkepb.EndpointSpec{Ports: []*minkepb.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 443, PublishedPort: 8443}}}
	got, err := parseUpdate(t, base, "--mount-rm", "/tmp", "--mount-add", "type=volume,source=other,target=/data",
		"--dns-add", "10.0.0.2", "--dns-rm", "10.0.0.1", "--publish-rm", "443", "--publish-add", "9090:80",
		"--read-only", "--limit-pids", "100", "--ulimit-add", "nofile=10:20", "--stop-signal", "SIGQUIT")
	if err != nil {
		t.Fatal(err)
	}
	c := got.GetTask().GetContainer()
	if len(c.GetMounts()) != 1 || c.GetMounts()[0].GetSource() != "other" {
		t.Errorf("mounts %v, want only /data from volume other", c.GetMounts())
	}
	if strings.Join(c.GetDnsServers(), ",") != "10.0.0.2" || !c.GetReadOnly() || c.GetStopSignal() != "SIGQUIT" {
		t.Errorf("container %s", prototext.Format(c))
	}
	if !c.GetInit() {
		t.Errorf("--init not given but init turned off")
	}
	if got.GetTask().GetResources().GetLimits().GetPids() != 100 || len(c.GetUlimits()) != 1 {
		t.Errorf("pids/ulimits: %s", prototext.Format(got.GetTask()))
	}
	ports := got.GetEndpoint().GetPorts()
	if len(ports) != 1 || ports[0].GetTargetPort() != 80 || ports[0].GetPublishedPort() != 9090 {
		t.Errorf("ports %v, want only 9090->80", ports)
	}
	if _, err := parseUpdate(t, base, "--health-cmd", "true"); err != nil {
		t.Errorf("--health-cmd: %v", err)
	}
	if hc, _ := parseUpdate(t, base, "--health-cmd", "true"); hc.GetTask().GetContainer().GetHealthcheck() == nil {
		t.Errorf("--health-cmd did not set a healthcheck")
	}
}
