package controlapi

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/scheduler"
)

// Fuzz targets for every validator in validate.go. Their seed corpora are
// in testdata/fuzz/<target>; without -fuzz they run over the seeds as
// ordinary tests. Run one for longer with, e.g.,
//
//	go test -run '^$' -fuzz '^FuzzValidateSpec$' -fuzztime 2m ./pkg/controlapi

// errShape is what every validation error looks like: it names the field
// that is wrong ("invalid X ...", "X is required", "placement.X: ...").
var errShape = regexp.MustCompile(`^(invalid [a-z_-]+|[a-z]+ is required|placement\.(constraints|preferences): invalid)`)

func fuzzSpec(name, image, env, constraint, pref, capAdd string, replicas uint64, memory, cpus, grace int64) *minkepb.ServiceSpec {
	s := &minkepb.ServiceSpec{
		Name: name,
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: image, StopGracePeriod: durationpb.New(time.Duration(grace))},
			Resources: &minkepb.ResourceRequirements{Limits: &minkepb.Resources{MemoryBytes: memory, NanoCpus: cpus}},
		},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: replicas}},
	}
	if env != "" {
		s.Task.Container.Env = strings.Split(env, "\n")
	}
	if capAdd != "" {
		s.Task.Container.CapAdd = strings.Split(capAdd, ",")
	}
	if constraint != "" {
		s.Task.Placement = &minkepb.Placement{Constraints: strings.Split(constraint, "\n")}
	}
	if pref != "" {
		if s.Task.Placement == nil {
			s.Task.Placement = &minkepb.Placement{}
		}
		s.Task.Placement.Preferences = strings.Split(pref, "\n")
	}
	return s
}

// FuzzValidateSpec checks that validateSpec never panics, that what it
// accepts satisfies the rules it states, and that its errors name a field.
func FuzzValidateSpec(f *testing.F) {
	f.Add("web", "busybox:latest", "A=1", "node.role==worker", "spread=node.labels.zone", "NET_ADMIN", uint64(3), int64(64<<20), int64(5e8), int64(10e9))
	f.Fuzz(func(t *testing.T, name, image, env, constraint, pref, capAdd string, replicas uint64, memory, cpus, grace int64) {
		spec := fuzzSpec(name, image, env, constraint, pref, capAdd, replicas, memory, cpus, grace)
		before := proto.Clone(spec)
		err := validateSpec(spec)
		if !proto.Equal(before, spec) {
			t.Fatal("validateSpec changed the spec")
		}
		if err != nil {
			if !errShape.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		switch {
		case name != "" && !serviceName.MatchString(name):
			t.Fatalf("accepted name %q", name)
		case replicas > MaxReplicas:
			t.Fatalf("accepted %d replicas", replicas)
		case image == "":
			t.Fatal("accepted an empty image")
		case memory < 0 || (memory > 0 && memory < MinMemoryLimit):
			t.Fatalf("accepted memory limit %d", memory)
		case cpus < 0:
			t.Fatalf("accepted nano_cpus %d", cpus)
		case grace < 0:
			t.Fatalf("accepted stop grace period %d", grace)
		}
		for _, e := range spec.GetTask().GetContainer().GetEnv() {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				t.Fatalf("accepted env %q", e)
			}
		}
	})
}

// FuzzValidateSpecProto feeds validateSpec whatever protobuf decodes to a
// ServiceSpec: the shape a hostile gRPC client can send.
func FuzzValidateSpecProto(f *testing.F) {
	for _, s := range []*minkepb.ServiceSpec{
		fuzzSpec("web", "busybox", "A=1", "node.labels.zone==a", "spread=node.labels.rack", "", 2, 0, 0, 0),
		fuzzSpec("", "registry:5000/x/y:1@sha256:"+strings.Repeat("a", 64), "", "", "", "", 0, 6<<20, 1, 1),
		{},
	} {
		b, _ := proto.Marshal(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec minkepb.ServiceSpec
		if proto.Unmarshal(b, &spec) != nil {
			return
		}
		err := validateSpec(&spec)
		if err != nil {
			if !errShape.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if _, ok := spec.GetMode().(*minkepb.ServiceSpec_Replicated); !ok {
			t.Fatal("accepted a spec without replicated mode")
		}
		for _, c := range spec.GetTask().GetPlacement().GetConstraints() {
			if _, err := scheduler.ParseConstraint(c); err != nil {
				t.Fatalf("accepted constraint %q: %v", c, err)
			}
		}
	})
}

// FuzzPlacementConstraint checks the placement rules through validateSpec:
// a constraint is accepted exactly when it parses, an accepted one has a
// value free of operators, and its canonical form parses back to it.
func FuzzPlacementConstraint(f *testing.F) {
	f.Add("node.labels.zone==eu-1", "spread=node.labels.zone")
	f.Fuzz(func(t *testing.T, constraint, pref string) {
		spec := fuzzSpec("web", "busybox", "", "", "", "", 1, 0, 0, 0)
		spec.Task.Placement = &minkepb.Placement{Constraints: []string{constraint}, Preferences: []string{pref}}
		err := validateSpec(spec)
		c, cerr := scheduler.ParseConstraint(constraint)
		p, perr := scheduler.ParsePreference(pref)
		if (err == nil) != (cerr == nil && perr == nil) {
			t.Fatalf("validateSpec = %v, but ParseConstraint = %v and ParsePreference = %v", err, cerr, perr)
		}
		if cerr == nil {
			// Label names hold no = or !, so the first one is the operator.
			cs := c.String()
			value := cs[strings.IndexAny(cs, "=!")+2:]
			if value == "" || strings.ContainsAny(value, "=!<>") {
				t.Fatalf("accepted %q with value %q", constraint, value)
			}
			back, err := scheduler.ParseConstraint(c.String())
			if err != nil || back != c {
				t.Fatalf("%q: canonical form %q parses to %+v, %v; want %+v", constraint, c.String(), back, err, c)
			}
		}
		if perr == nil {
			back, err := scheduler.ParsePreference(p.String())
			if err != nil || back != p {
				t.Fatalf("%q: canonical form %q parses to %+v, %v", pref, p.String(), back, err)
			}
		}
	})
}

// FuzzValidateNodeUpdate checks that validateNodeUpdate never panics and
// accepts only non-blank label keys and known availabilities.
func FuzzValidateNodeUpdate(f *testing.F) {
	f.Add("zone", "a", true, int32(2))
	f.Fuzz(func(t *testing.T, key, value string, setAvailability bool, availability int32) {
		req := &minkepb.UpdateNodeRequest{Node: "n", LabelAdd: map[string]string{key: value},
			SetAvailability: setAvailability, Availability: minkepb.NodeSpec_Availability(availability)}
		err := validateNodeUpdate(req)
		if err != nil {
			if !errShape.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if strings.TrimSpace(key) == "" {
			t.Fatalf("accepted label key %q", key)
		}
		if _, ok := minkepb.NodeSpec_Availability_name[availability]; setAvailability && !ok {
			t.Fatalf("accepted availability %d", availability)
		}
	})
}

// FuzzValidateMode checks every service mode through validateSpec: counts
// within bounds, a replicated job completing at least one task and running
// no more at once than it completes.
func FuzzValidateMode(f *testing.F) {
	f.Add(uint8(0), uint64(3), uint64(0))
	f.Fuzz(func(t *testing.T, mode uint8, count, concurrent uint64) {
		spec := fuzzSpec("web", "busybox", "", "", "", "", 0, 0, 0, 0)
		switch mode % 5 {
		case 0:
			spec.Mode = &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: count}}
		case 1:
			spec.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
		case 2:
			spec.Mode = &minkepb.ServiceSpec_GlobalJob{GlobalJob: &minkepb.GlobalJob{}}
		case 3:
			spec.Mode = &minkepb.ServiceSpec_ReplicatedJob{ReplicatedJob: &minkepb.ReplicatedJob{TotalCompletions: count, MaxConcurrent: concurrent}}
		case 4:
			spec.Mode = nil
		}
		err := validateSpec(spec)
		if err != nil {
			if !errShape.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		switch m := spec.GetMode().(type) {
		case nil:
			t.Fatal("accepted a spec without a mode")
		case *minkepb.ServiceSpec_Replicated:
			if m.Replicated.GetReplicas() > MaxReplicas {
				t.Fatalf("accepted %d replicas", m.Replicated.GetReplicas())
			}
		case *minkepb.ServiceSpec_ReplicatedJob:
			n, c := m.ReplicatedJob.GetTotalCompletions(), m.ReplicatedJob.GetMaxConcurrent()
			if n == 0 || n > MaxReplicas || c > n {
				t.Fatalf("accepted a replicated job of %d completions, %d at once", n, c)
			}
		}
	})
}

// FuzzValidateUpdateConfig checks update and rollback configs through
// validateSpec: durations not negative, a failure ratio in [0, 1] (NaN
// refused), known actions and orders, and no rollback of a rollback.
func FuzzValidateUpdateConfig(f *testing.F) {
	f.Add(false, int64(time.Second), int64(5*time.Second), 0.2, int32(2), int32(1))
	f.Fuzz(func(t *testing.T, rollback bool, delay, monitor int64, ratio float64, action, order int32) {
		spec := fuzzSpec("web", "busybox", "", "", "", "", 1, 0, 0, 0)
		c := &minkepb.UpdateConfig{Delay: durationpb.New(time.Duration(delay)), Monitor: durationpb.New(time.Duration(monitor)),
			MaxFailureRatio: ratio, FailureAction: minkepb.UpdateConfig_FailureAction(action), Order: minkepb.UpdateConfig_Order(order)}
		field := "update_config"
		if rollback {
			spec.RollbackConfig, field = c, "rollback_config"
		} else {
			spec.UpdateConfig = c
		}
		err := validateSpec(spec)
		if err != nil {
			if !errShape.MatchString(err.Error()) || !strings.Contains(err.Error(), field+".") {
				t.Fatalf("error %q does not name the field %s", err, field)
			}
			return
		}
		_, actionOK := minkepb.UpdateConfig_FailureAction_name[action]
		_, orderOK := minkepb.UpdateConfig_Order_name[order]
		switch {
		case delay < 0 || monitor < 0:
			t.Fatalf("accepted delay %d, monitor %d", delay, monitor)
		case !(ratio >= 0 && ratio <= 1):
			t.Fatalf("accepted max_failure_ratio %v", ratio)
		case !actionOK || !orderOK:
			t.Fatalf("accepted failure_action %d, order %d", action, order)
		case rollback && c.GetFailureAction() == minkepb.UpdateConfig_ROLLBACK:
			t.Fatal("accepted a rollback config that rolls back")
		}
	})
}
